/*  test_dedup.c: the idempotency window (broker/dedup.c): new / resend /
 *  conflict, eviction of the oldest pair, the open-addressing index under
 *  many inserts and evictions (against a simple model), keyed ids, order. */
#include "broker.h"
#include "check.h"
#include "mbuild.h"

#include <inttypes.h>
#include <msgpack.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bk_dedup_id_t
id_of(uint64_t key, uint64_t content)
{
    bk_dedup_id_t id = {key, content};
    return id;
}

/* ---------------------------------------------------------------- basics */

static void
test_new_resend_conflict(void)
{
    CHECK(bk_dedup_new(0, NULL) == NULL);
    CHECK(bk_dedup_new((1u << 28) + 1, NULL) == NULL);
    bk_dedup_destroy(NULL);

    bk_dedup_t *d = bk_dedup_new(4, NULL);
    CHECK(d != NULL);
    uint64_t seq = 777;
    bk_dedup_id_t a = id_of(0x1001, 0xaaaa);
    CHECK(bk_dedup_find(d, &a, &seq) == BK_DEDUP_NEW);
    CHECK(seq == 777); /* untouched unless a resend */
    bk_dedup_insert(d, &a, 5);
    CHECK(bk_dedup_find(d, &a, &seq) == BK_DEDUP_RESEND && seq == 5);
    bk_dedup_id_t other_bytes = id_of(0x1001, 0xbbbb);
    seq = 777;
    CHECK(bk_dedup_find(d, &other_bytes, &seq) == BK_DEDUP_CONFLICT && seq == 777);
    bk_dedup_id_t b = id_of(0x2001, 0xaaaa); /* same content, another pair */
    CHECK(bk_dedup_find(d, &b, &seq) == BK_DEDUP_NEW);

    /* an insert of a known pair updates it in place */
    bk_dedup_insert(d, &other_bytes, 9);
    CHECK(bk_dedup_find(d, &other_bytes, &seq) == BK_DEDUP_RESEND && seq == 9);
    CHECK(bk_dedup_find(d, &a, &seq) == BK_DEDUP_CONFLICT);
    bk_dedup_destroy(&d);
    CHECK(d == NULL);
    bk_dedup_destroy(&d);
}

static void
test_evicts_the_oldest(void)
{
    bk_dedup_t *d = bk_dedup_new(4, NULL);
    uint64_t seq;
    for (uint64_t i = 1; i <= 4; i++) {
        bk_dedup_id_t id = id_of(i * 0x10001, i);
        bk_dedup_insert(d, &id, i);
    }
    for (uint64_t i = 1; i <= 4; i++) {
        bk_dedup_id_t id = id_of(i * 0x10001, i);
        CHECK(bk_dedup_find(d, &id, &seq) == BK_DEDUP_RESEND && seq == i);
    }
    /* updating pair 1 does not make it younger: it is still the oldest */
    bk_dedup_id_t one = id_of(0x10001, 1);
    bk_dedup_insert(d, &one, 11);
    bk_dedup_id_t five = id_of(5 * 0x10001, 5);
    bk_dedup_insert(d, &five, 5);
    CHECK(bk_dedup_find(d, &one, &seq) == BK_DEDUP_NEW);
    for (uint64_t i = 2; i <= 5; i++) {
        bk_dedup_id_t id = id_of(i * 0x10001, i);
        CHECK(bk_dedup_find(d, &id, &seq) == BK_DEDUP_RESEND && seq == i);
    }
    bk_dedup_id_t six = id_of(6 * 0x10001, 6);
    bk_dedup_insert(d, &six, 6);
    bk_dedup_id_t two = id_of(2 * 0x10001, 2);
    CHECK(bk_dedup_find(d, &two, &seq) == BK_DEDUP_NEW);
    bk_dedup_destroy(&d);

    /* a window of one */
    d = bk_dedup_new(1, NULL);
    bk_dedup_insert(d, &one, 1);
    CHECK(bk_dedup_find(d, &one, &seq) == BK_DEDUP_RESEND && seq == 1);
    bk_dedup_insert(d, &two, 2);
    CHECK(bk_dedup_find(d, &one, &seq) == BK_DEDUP_NEW);
    CHECK(bk_dedup_find(d, &two, &seq) == BK_DEDUP_RESEND && seq == 2);
    bk_dedup_destroy(&d);
}

/* ---------------------------------------------------------------- model */

/*  The model: a FIFO of (key, content, seq), oldest first. */
typedef struct {
    uint64_t key, content, seq;
} m_entry_t;

typedef struct {
    m_entry_t *e;
    uint32_t n, cap;
} model_t;

static int
model_find(const model_t *m, uint64_t key)
{
    for (uint32_t i = 0; i < m->n; i++)
        if (m->e[i].key == key)
            return (int)i;
    return -1;
}

static void
model_insert(model_t *m, uint64_t key, uint64_t content, uint64_t seq)
{
    int i = model_find(m, key);
    if (i >= 0) {
        m->e[i].content = content;
        m->e[i].seq = seq;
        return;
    }
    if (m->n == m->cap) {
        memmove(m->e, m->e + 1, (m->n - 1) * sizeof *m->e);
        m->n--;
    }
    m->e[m->n++] = (m_entry_t){key, content, seq};
}

typedef struct {
    const model_t *m;
    uint32_t i;
    int bad;
} each_t;

static int
each_cmp(void *arg, const bk_dedup_id_t *id, uint64_t seq)
{
    each_t *c = arg;
    if (c->i >= c->m->n || c->m->e[c->i].key != id->key || c->m->e[c->i].content != id->content ||
        c->m->e[c->i].seq != seq)
        c->bad++;
    c->i++;
    return 0;
}

static uint64_t s_rng = 0x9e3779b97f4a7c15ull;

static uint64_t
rnd(void)
{
    s_rng ^= s_rng << 13;
    s_rng ^= s_rng >> 7;
    s_rng ^= s_rng << 17;
    return s_rng;
}

/*  Random inserts (new and known pairs) and lookups of every pair of the
 *  pool after each step. The pool's keys share a few home slots near the
 *  end of the index (so probes wrap around), which is what stresses the
 *  backward-shift deletion. */
static int
stress(uint32_t capacity, uint32_t pool, uint32_t steps, const uint32_t *homes, uint32_t nhomes)
{
    bk_dedup_t *d = bk_dedup_new(capacity, NULL);
    if (!d)
        return 1;
    model_t m = {calloc(capacity, sizeof(m_entry_t)), 0, capacity};
    uint64_t *keys = calloc(pool, sizeof *keys);
    for (uint32_t i = 0; i < pool; i++)
        keys[i] = ((uint64_t)(i + 1) << 32) | homes[i % nhomes]; /* distinct, never 0 */
    int bad = 0;
    for (uint32_t s = 0; s < steps && !bad; s++) {
        uint32_t k = (uint32_t)(rnd() % pool);
        uint64_t content = rnd() % 3 + 1;
        bk_dedup_id_t id = {keys[k], content};
        uint64_t seq = s + 1;
        /* as ingest does: find first, insert only if new; sometimes an
         * insert of a known pair (a journal replay does that) */
        if (rnd() % 8 == 0 || bk_dedup_find(d, &id, &seq) == BK_DEDUP_NEW) {
            bk_dedup_insert(d, &id, s + 1);
            model_insert(&m, keys[k], content, s + 1);
        }
        for (uint32_t i = 0; i < pool; i++) {
            int at = model_find(&m, keys[i]);
            for (uint64_t c = 1; c <= 3; c++) {
                bk_dedup_id_t q = {keys[i], c};
                uint64_t got = 0;
                bk_dedup_result_t r = bk_dedup_find(d, &q, &got);
                bk_dedup_result_t want = at < 0                 ? BK_DEDUP_NEW
                                         : m.e[at].content == c ? BK_DEDUP_RESEND
                                                                : BK_DEDUP_CONFLICT;
                if (r != want || (r == BK_DEDUP_RESEND && got != m.e[at].seq)) {
                    fprintf(stderr,
                            "capacity %u step %u: key %" PRIx64 " content %" PRIu64
                            ": got %d want %d\n",
                            capacity, s, keys[i], c, (int)r, (int)want);
                    bad = 1;
                    break;
                }
            }
        }
        if (s % 64 == 0 || bad) {
            each_t e = {.m = &m};
            bk_dedup_each(d, each_cmp, &e);
            if (e.bad || e.i != m.n) {
                fprintf(stderr, "capacity %u step %u: bk_dedup_each differs\n", capacity, s);
                bad = 1;
            }
        }
    }
    free(keys);
    free(m.e);
    bk_dedup_destroy(&d);
    return bad;
}

static void
test_index_against_model(void)
{
    /* capacity 4: 8 index slots (mask 7); homes 5, 6, 7, 0 make runs wrap */
    static const uint32_t wrap[] = {5, 6, 7, 7, 0, 6};
    CHECK(stress(4, 10, 20000, wrap, 6) == 0);
    /* everything on one home slot: the longest runs */
    static const uint32_t one[] = {7};
    CHECK(stress(4, 9, 20000, one, 1) == 0);
    /* non-power-of-two capacities, a window of one */
    static const uint32_t few[] = {0, 1, 2, 3, 15, 14, 13};
    CHECK(stress(3, 8, 10000, few, 7) == 0);
    CHECK(stress(5, 12, 10000, few, 7) == 0);
    CHECK(stress(1, 4, 5000, few, 7) == 0);
    /* spread homes, larger window */
    uint32_t spread[64];
    for (uint32_t i = 0; i < 64; i++)
        spread[i] = (uint32_t)rnd();
    CHECK(stress(64, 200, 5000, spread, 64) == 0);
    static const uint32_t clustered[] = {126, 127, 127, 0, 1, 1, 126, 125};
    CHECK(stress(64, 160, 5000, clustered, 8) == 0);
}

/* ---------------------------------------------------------------- order */

typedef struct {
    uint64_t seqs[16];
    int n, stop_at;
} seqs_t;

static int
each_seq(void *arg, const bk_dedup_id_t *id, uint64_t seq)
{
    seqs_t *s = arg;
    if (s->n < 16)
        s->seqs[s->n] = seq;
    s->n++;
    return s->stop_at && s->n == s->stop_at;
}

static void
test_each_oldest_first(void)
{
    bk_dedup_t *d = bk_dedup_new(4, NULL);
    seqs_t s = {0};
    CHECK(bk_dedup_each(d, each_seq, &s) == 0 && s.n == 0);
    for (uint64_t i = 1; i <= 3; i++) {
        bk_dedup_id_t id = id_of(i << 8 | 1, i);
        bk_dedup_insert(d, &id, 100 + i);
    }
    s = (seqs_t){0};
    CHECK(bk_dedup_each(d, each_seq, &s) == 0);
    CHECK(s.n == 3 && s.seqs[0] == 101 && s.seqs[1] == 102 && s.seqs[2] == 103);
    for (uint64_t i = 4; i <= 9; i++) { /* wraps: 6 7 8 9 are left */
        bk_dedup_id_t id = id_of(i << 8 | 1, i);
        bk_dedup_insert(d, &id, 100 + i);
    }
    s = (seqs_t){0};
    CHECK(bk_dedup_each(d, each_seq, &s) == 0);
    CHECK(s.n == 4 && s.seqs[0] == 106 && s.seqs[1] == 107 && s.seqs[2] == 108 && s.seqs[3] == 109);
    /* a non-zero return stops the walk */
    s = (seqs_t){.stop_at = 2};
    CHECK(bk_dedup_each(d, each_seq, &s) == -1 && s.n == 2);
    bk_dedup_destroy(&d);
}

/* ---------------------------------------------------------------- keys */

typedef struct {
    msgpack_sbuffer sb;
    event_t ev;
} wev_t;

static int
wev(wev_t *w, const char *producer, uint64_t pseq, const char *status)
{
    msgpack_packer pk;
    msgpack_sbuffer_init(&w->sb);
    msgpack_packer_init(&pk, &w->sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 5);
    pk_str(&pk, "task_id");
    pk_str(&pk, "t1");
    pk_str(&pk, "user_id");
    pk_str(&pk, "u1");
    pk_str(&pk, "status");
    pk_str(&pk, status);
    pk_str(&pk, "producer");
    pk_str(&pk, producer);
    pk_str(&pk, "pseq");
    msgpack_pack_uint64(&pk, pseq);
    event_error_t err;
    int rc = event_decode(&w->ev, w->sb.data, w->sb.size, EVENT_FROM_WORKER, &err);
    if (rc != 0 || !w->ev.has_producer)
        fprintf(stderr, "test event refused: %s\n", err.detail);
    return rc;
}

static bk_dedup_id_t
hash(const bk_dedup_t *d, const wev_t *w)
{
    bk_dedup_id_t id;
    bk_dedup_hash(d, &w->ev, w->sb.data, w->sb.size, &id);
    return id;
}

static void
test_keys(void)
{
    unsigned char keys[BK_DEDUP_KEYS], got[BK_DEDUP_KEYS];
    for (int i = 0; i < BK_DEDUP_KEYS; i++)
        keys[i] = (unsigned char)(i * 7 + 1);
    bk_dedup_t *a = bk_dedup_new(8, keys), *b = bk_dedup_new(16, keys);
    bk_dedup_t *r1 = bk_dedup_new(8, NULL), *r2 = bk_dedup_new(8, NULL);
    bk_dedup_keys(a, got);
    CHECK(memcmp(got, keys, sizeof keys) == 0);
    bk_dedup_keys(r1, got);
    bk_dedup_t *r1copy = bk_dedup_new(8, got);

    wev_t p1, p1_other_bytes, p2, q1, long1, long2;
    CHECK(wev(&p1, "worker-a", 1, "running") == 0);
    CHECK(wev(&p1_other_bytes, "worker-a", 1, "succeeded") == 0);
    CHECK(wev(&p2, "worker-a", 2, "running") == 0);
    CHECK(wev(&q1, "worker-b", 1, "running") == 0);
    char lp[129];
    memset(lp, 'p', 128);
    lp[128] = '\0';
    CHECK(wev(&long1, lp, 1, "running") == 0);
    lp[127] = 'q'; /* differs in the last byte of a 128-byte producer */
    CHECK(wev(&long2, lp, 1, "running") == 0);

    /* same keys: same ids, whatever the window */
    bk_dedup_id_t ia = hash(a, &p1), ib = hash(b, &p1);
    CHECK(ia.key == ib.key && ia.content == ib.content);
    bk_dedup_id_t x = hash(r1, &p1), y = hash(r1copy, &p1);
    CHECK(x.key == y.key && x.content == y.content);
    /* other keys: other ids (random keys: different with overwhelming odds) */
    bk_dedup_id_t ir1 = hash(r1, &p1), ir2 = hash(r2, &p1);
    CHECK(ir1.key != ia.key && ir1.key != ir2.key && ir1.content != ir2.content);
    /* the key is the pair; the content is the bytes */
    bk_dedup_id_t o = hash(a, &p1_other_bytes);
    CHECK(o.key == ia.key && o.content != ia.content);
    CHECK(hash(a, &p2).key != ia.key);
    CHECK(hash(a, &q1).key != ia.key);
    CHECK(hash(a, &long1).key != hash(a, &long2).key);
    CHECK((ia.key & 1) && (hash(a, &p2).key & 1) && (ir1.key & 1)); /* never 0 */

    /* through the window: resend, conflict, and the same answers in a
     * window built with the same keys (as after a restart) */
    bk_dedup_insert(a, &ia, 41);
    uint64_t seq = 0;
    CHECK(bk_dedup_find(a, &ib, &seq) == BK_DEDUP_RESEND && seq == 41);
    CHECK(bk_dedup_find(a, &o, &seq) == BK_DEDUP_CONFLICT);
    bk_dedup_id_t ip2 = hash(a, &p2);
    CHECK(bk_dedup_find(a, &ip2, &seq) == BK_DEDUP_NEW);
    bk_dedup_insert(b, &ib, 41);
    bk_dedup_id_t ob = hash(b, &p1_other_bytes);
    CHECK(bk_dedup_find(b, &ob, &seq) == BK_DEDUP_CONFLICT);
    /* a window with other keys does not recognise the pair */
    bk_dedup_insert(r1, &ir1, 41);
    bk_dedup_id_t from_a = hash(a, &p1);
    CHECK(bk_dedup_find(r1, &from_a, &seq) == BK_DEDUP_NEW);

    msgpack_sbuffer_destroy(&p1.sb);
    msgpack_sbuffer_destroy(&p1_other_bytes.sb);
    msgpack_sbuffer_destroy(&p2.sb);
    msgpack_sbuffer_destroy(&q1.sb);
    msgpack_sbuffer_destroy(&long1.sb);
    msgpack_sbuffer_destroy(&long2.sb);
    bk_dedup_destroy(&a);
    bk_dedup_destroy(&b);
    bk_dedup_destroy(&r1);
    bk_dedup_destroy(&r1copy);
    bk_dedup_destroy(&r2);
}

/*  Many real ids through a small window, in a long run. */
static void
test_long_run_real_ids(void)
{
    bk_dedup_t *d = bk_dedup_new(4, NULL);
    int bad = 0;
    for (uint64_t pseq = 1; pseq <= 20000; pseq++) {
        wev_t w;
        if (wev(&w, "long-run", pseq, "running") != 0) {
            bad++;
            break;
        }
        bk_dedup_id_t id = hash(d, &w);
        uint64_t seq = 0;
        if (bk_dedup_find(d, &id, &seq) != BK_DEDUP_NEW)
            bad++;
        bk_dedup_insert(d, &id, pseq);
        msgpack_sbuffer_destroy(&w.sb);
        /* the last four are resends, the fifth-last is forgotten */
        for (uint64_t back = 0; back < 5 && back < pseq; back++) {
            if (wev(&w, "long-run", pseq - back, "running") != 0) {
                bad++;
                break;
            }
            bk_dedup_id_t q = hash(d, &w);
            bk_dedup_result_t r = bk_dedup_find(d, &q, &seq);
            if (back < 4 ? (r != BK_DEDUP_RESEND || seq != pseq - back) : r != BK_DEDUP_NEW)
                bad++;
            msgpack_sbuffer_destroy(&w.sb);
        }
        if (bad) {
            fprintf(stderr, "long run: wrong answer at pseq %" PRIu64 "\n", pseq);
            break;
        }
    }
    CHECK(bad == 0);
    bk_dedup_destroy(&d);
}

int
main(void)
{
    if (sodium_init() < 0) {
        fprintf(stderr, "sodium_init failed\n");
        return 1;
    }
    test_new_resend_conflict();
    test_evicts_the_oldest();
    test_index_against_model();
    test_each_oldest_first();
    test_keys();
    test_long_run_real_ids();
    return check_report();
}
