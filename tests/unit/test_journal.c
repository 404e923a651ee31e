/*  test_journal.c: the append-only journal file (broker/journal.c): round
 *  trip, torn tails, damaged records, refused files, the lock, rewrites and
 *  the rewrite threshold. Files live in a mkdtemp directory under /tmp. */
#include "broker.h"
#include "check.h"
#include "crc32c.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAGIC_LEN 8
#define HEAD_LEN  8

static char s_dir[64];
static char s_path[128];

/* ---------------------------------------------------------------- files */

static long
file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? (long)st.st_size : -1;
}

static int
exists(const char *path)
{
    return access(path, F_OK) == 0;
}

/*  The whole file, malloc'ed; *len its size. */
static unsigned char *
slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *p = malloc(n > 0 ? (size_t)n : 1);
    *len = fread(p, 1, (size_t)n, f);
    fclose(f);
    return p;
}

static int
spit(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return -1;
    size_t n = fwrite(data, 1, len, f);
    return fclose(f) == 0 && n == len ? 0 : -1;
}

/* ---------------------------------------------------------------- replay */

typedef struct {
    int kind;
    size_t len;
    unsigned char data[512];
} seen_rec_t;

typedef struct {
    seen_rec_t r[64];
    int n;
    int refuse_at; /* refuse the record with this index (1-based), 0: never */
} seen_t;

static int
on_record(void *arg, int kind, const uint8_t *body, size_t len, char *err, size_t errlen)
{
    seen_t *s = arg;
    if (s->refuse_at && s->n + 1 == s->refuse_at) {
        snprintf(err, errlen, "refused by the test");
        return -1;
    }
    if (s->n < 64) {
        s->r[s->n].kind = kind;
        s->r[s->n].len = len;
        memcpy(s->r[s->n].data, body, len < 512 ? len : 512);
    }
    s->n++;
    return 0;
}

/*  The records the tests write: kind, head, body. */
typedef struct {
    int kind;
    const char *head;
    size_t headlen;
    const char *body;
    size_t bodylen;
} rec_t;

static char s_big_body[400];

static rec_t s_recs[3];

static void
recs_init(void)
{
    for (size_t i = 0; i < sizeof s_big_body; i++)
        s_big_body[i] = (char)(i * 31 + 7);
    s_recs[0] = (rec_t){'M', "head-one", 8, "the first body", 14};
    s_recs[1] = (rec_t){'E', "\x00\x01\x02", 3, s_big_body, sizeof s_big_body};
    s_recs[2] = (rec_t){'D', "only a head, no body", 20, NULL, 0};
}

static size_t
rec_disk_len(const rec_t *r)
{
    return HEAD_LEN + 1 + r->headlen + r->bodylen;
}

/*  1 if seen record i is r (kind, head then body). */
static int
seen_is(const seen_t *s, int i, const rec_t *r)
{
    if (i >= s->n || s->r[i].kind != r->kind || s->r[i].len != r->headlen + r->bodylen)
        return 0;
    return memcmp(s->r[i].data, r->head, r->headlen) == 0 &&
           (r->bodylen == 0 || memcmp(s->r[i].data + r->headlen, r->body, r->bodylen) == 0);
}

static void
append(bk_journal_t *j, const rec_t *r)
{
    bk_journal_append(j, r->kind, r->head, r->headlen, r->body, r->bodylen);
}

/*  A journal at path with the three records. */
static int
make_three(const char *path)
{
    unlink(path);
    bk_journal_t *j = NULL;
    uint64_t dropped = 99;
    char err[256] = "";
    seen_t s = {0};
    if (bk_journal_open(&j, path, on_record, &s, &dropped, err, sizeof err) != 0) {
        fprintf(stderr, "open: %s\n", err);
        return -1;
    }
    for (int i = 0; i < 3; i++)
        append(j, &s_recs[i]);
    int rc = bk_journal_flush(j);
    bk_journal_close(&j);
    return rc;
}

/* ---------------------------------------------------------------- tests */

static void
test_round_trip(void)
{
    unlink(s_path);
    bk_journal_t *j = NULL;
    uint64_t dropped = 99;
    char err[256] = "";
    seen_t s = {0};
    CHECK(bk_journal_open(&j, s_path, on_record, &s, &dropped, err, sizeof err) == 0);
    CHECK(j != NULL && s.n == 0 && dropped == 0);
    CHECK(bk_journal_size(j) == MAGIC_LEN && file_size(s_path) == MAGIC_LEN);
    append(j, &s_recs[0]);
    append(j, &s_recs[1]);
    /* buffered until the flush */
    CHECK(file_size(s_path) == MAGIC_LEN);
    CHECK(bk_journal_flush(j) == 0);
    size_t want = MAGIC_LEN + rec_disk_len(&s_recs[0]) + rec_disk_len(&s_recs[1]);
    CHECK(bk_journal_size(j) == want && file_size(s_path) == (long)want);
    CHECK(bk_journal_flush(j) == 0); /* nothing to write */
    CHECK(bk_journal_sync(j) == 0);
    CHECK(bk_journal_sync(j) == 0);
    append(j, &s_recs[2]);
    bk_journal_close(&j); /* flushes */
    CHECK(j == NULL);
    bk_journal_close(&j);
    want += rec_disk_len(&s_recs[2]);
    CHECK(file_size(s_path) == (long)want);

    size_t len;
    unsigned char *raw = slurp(s_path, &len);
    CHECK(raw && len == want && memcmp(raw, "TCJ1\n\0\0\0", MAGIC_LEN) == 0);
    free(raw);

    s = (seen_t){0};
    CHECK(bk_journal_open(&j, s_path, on_record, &s, &dropped, err, sizeof err) == 0);
    CHECK(s.n == 3 && dropped == 0);
    for (int i = 0; i < 3; i++)
        CHECK(seen_is(&s, i, &s_recs[i]));
    CHECK(bk_journal_size(j) == want);
    /* appends after a reopen go to the end */
    append(j, &s_recs[0]);
    bk_journal_close(&j);
    s = (seen_t){0};
    CHECK(bk_journal_open(&j, s_path, on_record, &s, &dropped, err, sizeof err) == 0);
    CHECK(s.n == 4 && seen_is(&s, 3, &s_recs[0]) && seen_is(&s, 2, &s_recs[2]));
    bk_journal_close(&j);

    /* a path that cannot be opened */
    char bad[200];
    snprintf(bad, sizeof bad, "%s/no/such/dir/j", s_dir);
    CHECK(bk_journal_open(&j, bad, on_record, &s, &dropped, err, sizeof err) == -1);
    CHECK(j == NULL && strstr(err, "cannot open") != NULL);
}

static void
test_torn_tail(void)
{
    CHECK(make_three(s_path) == 0);
    size_t full_len;
    unsigned char *full = slurp(s_path, &full_len);
    size_t end2 = MAGIC_LEN + rec_disk_len(&s_recs[0]) + rec_disk_len(&s_recs[1]);
    CHECK(full_len == end2 + rec_disk_len(&s_recs[2]));
    int bad = 0;
    /* cut inside the last record at every offset (its header included) */
    for (size_t cut = end2; cut < full_len && full; cut++) {
        if (spit(s_path, full, cut) != 0) {
            bad++;
            break;
        }
        bk_journal_t *j = NULL;
        uint64_t dropped = 99;
        char err[256] = "";
        seen_t s = {0};
        if (bk_journal_open(&j, s_path, on_record, &s, &dropped, err, sizeof err) != 0) {
            fprintf(stderr, "cut at %zu: %s\n", cut, err);
            bad++;
            break;
        }
        int ok = s.n == 2 && seen_is(&s, 0, &s_recs[0]) && seen_is(&s, 1, &s_recs[1]) &&
                 dropped == cut - end2 && bk_journal_size(j) == end2 &&
                 file_size(s_path) == (long)end2;
        /* new appends after the cut */
        append(j, &s_recs[2]);
        append(j, &s_recs[0]);
        bk_journal_close(&j);
        s = (seen_t){0};
        dropped = 99;
        if (bk_journal_open(&j, s_path, on_record, &s, &dropped, err, sizeof err) != 0)
            ok = 0;
        else {
            ok = ok && s.n == 4 && dropped == 0 && seen_is(&s, 2, &s_recs[2]) &&
                 seen_is(&s, 3, &s_recs[0]);
            bk_journal_close(&j);
        }
        if (!ok) {
            fprintf(stderr, "torn tail: wrong result when cut at %zu\n", cut);
            bad++;
        }
    }
    CHECK(bad == 0);
    free(full);

    /* a torn header after the magic only, and trailing zeros (a file
     * extended by a crash) */
    unsigned char buf[MAGIC_LEN + 5 + 64];
    memcpy(buf, "TCJ1\n\0\0\0", MAGIC_LEN);
    memset(buf + MAGIC_LEN, 0, sizeof buf - MAGIC_LEN);
    CHECK(spit(s_path, buf, MAGIC_LEN + 5) == 0);
    bk_journal_t *j = NULL;
    uint64_t dropped = 0;
    char err[256];
    seen_t s = {0};
    CHECK(bk_journal_open(&j, s_path, on_record, &s, &dropped, err, sizeof err) == 0);
    CHECK(s.n == 0 && dropped == 5 && file_size(s_path) == MAGIC_LEN);
    bk_journal_close(&j);
    CHECK(spit(s_path, buf, sizeof buf) == 0);
    CHECK(bk_journal_open(&j, s_path, on_record, &s, &dropped, err, sizeof err) == 0);
    CHECK(s.n == 0 && dropped == sizeof buf - MAGIC_LEN && file_size(s_path) == MAGIC_LEN);
    bk_journal_close(&j);
}

static void
test_damaged_middle_record(void)
{
    CHECK(make_three(s_path) == 0);
    size_t full_len;
    unsigned char *full = slurp(s_path, &full_len);
    size_t end1 = MAGIC_LEN + rec_disk_len(&s_recs[0]);
    size_t end2 = end1 + rec_disk_len(&s_recs[1]);
    int bad = 0;
    /* flip one byte anywhere in the middle record: length, checksum,
     * kind, payload */
    for (size_t at = end1; at < end2 && full; at++) {
        unsigned char *copy = malloc(full_len);
        memcpy(copy, full, full_len);
        copy[at] ^= 0x5a;
        spit(s_path, copy, full_len);
        free(copy);
        bk_journal_t *j = NULL;
        uint64_t dropped = 99;
        char err[256] = "";
        seen_t s = {0};
        if (bk_journal_open(&j, s_path, on_record, &s, &dropped, err, sizeof err) != 0) {
            fprintf(stderr, "flip at %zu: %s\n", at, err);
            bad++;
            break;
        }
        int ok = s.n == 1 && seen_is(&s, 0, &s_recs[0]) && dropped == full_len - end1 &&
                 bk_journal_size(j) == end1 && file_size(s_path) == (long)end1;
        bk_journal_close(&j);
        if (!ok) {
            fprintf(stderr, "flip at %zu: %d records, dropped %llu\n", at, s.n,
                    (unsigned long long)dropped);
            bad++;
        }
    }
    CHECK(bad == 0);
    free(full);
}

static void
test_refused_files(void)
{
    /* not a journal: refused, and left exactly as it was */
    static const char garbage[] = "{\"this is\": \"not a journal\"}\n0123456789abcdef";
    const char *samples[] = {garbage, "TCJ", "TCJ2\n\0\0\0\x10\0\0\0"};
    size_t lens[] = {sizeof garbage - 1, 3, 12};
    for (int i = 0; i < 3; i++) {
        CHECK(spit(s_path, samples[i], lens[i]) == 0);
        bk_journal_t *j = NULL;
        uint64_t dropped = 99;
        char err[256] = "";
        seen_t s = {0};
        CHECK(bk_journal_open(&j, s_path, on_record, &s, &dropped, err, sizeof err) == -1);
        CHECK(j == NULL && s.n == 0);
        CHECK(strstr(err, "not a taskcast journal") != NULL && strstr(err, s_path) != NULL);
        size_t len;
        unsigned char *now = slurp(s_path, &len);
        CHECK(now && len == lens[i] && memcmp(now, samples[i], len) == 0);
        free(now);
    }

    /* a record the caller refuses: the open fails with its sentence, the
     * file is untouched (not cut at that record) */
    CHECK(make_three(s_path) == 0);
    long before = file_size(s_path);
    size_t len0;
    unsigned char *orig = slurp(s_path, &len0);
    bk_journal_t *j = NULL;
    uint64_t dropped = 0;
    char err[256] = "";
    seen_t s = {.refuse_at = 2};
    CHECK(bk_journal_open(&j, s_path, on_record, &s, &dropped, err, sizeof err) == -1);
    CHECK(j == NULL && strstr(err, "refused by the test") != NULL);
    CHECK(file_size(s_path) == before);
    size_t len1;
    unsigned char *after = slurp(s_path, &len1);
    CHECK(after && orig && len1 == len0 && memcmp(after, orig, len0) == 0);
    free(orig);
    free(after);
}

static void
test_lock(void)
{
    CHECK(make_three(s_path) == 0);
    bk_journal_t *j1 = NULL, *j2 = NULL;
    uint64_t dropped;
    char err[256] = "";
    seen_t s = {0};
    CHECK(bk_journal_open(&j1, s_path, on_record, &s, &dropped, err, sizeof err) == 0);
    s = (seen_t){0};
    CHECK(bk_journal_open(&j2, s_path, on_record, &s, &dropped, err, sizeof err) == -1);
    CHECK(j2 == NULL && s.n == 0);
    CHECK(strstr(err, "in use by another broker") != NULL);
    long size = file_size(s_path);
    append(j1, &s_recs[1]);
    CHECK(bk_journal_flush(j1) == 0);
    CHECK(file_size(s_path) == size + (long)rec_disk_len(&s_recs[1]));
    bk_journal_close(&j1);
    /* free again once closed */
    s = (seen_t){0};
    CHECK(bk_journal_open(&j2, s_path, on_record, &s, &dropped, err, sizeof err) == 0);
    CHECK(s.n == 4);
    bk_journal_close(&j2);

    /* a new file is locked from its creation */
    unlink(s_path);
    CHECK(bk_journal_open(&j1, s_path, on_record, &s, &dropped, err, sizeof err) == 0);
    CHECK(bk_journal_open(&j2, s_path, on_record, &s, &dropped, err, sizeof err) == -1);
    bk_journal_close(&j1);
}

typedef struct {
    int n;          /* records to write */
    int fail;       /* return -1 */
    char path[160]; /* the .compact file, checked while writing */
    int compact_existed;
} writer_t;

static int
writer(void *arg, bk_journal_t *out)
{
    writer_t *w = arg;
    w->compact_existed = exists(w->path);
    for (int i = 0; i < w->n; i++)
        append(out, &s_recs[2 - i % 3]);
    return w->fail ? -1 : 0;
}

static void
test_rewrite(void)
{
    CHECK(make_three(s_path) == 0);
    bk_journal_t *j = NULL, *j2 = NULL;
    uint64_t dropped;
    char err[256] = "";
    seen_t s = {0};
    CHECK(bk_journal_open(&j, s_path, on_record, &s, &dropped, err, sizeof err) == 0);
    for (int i = 0; i < 5; i++)
        append(j, &s_recs[1]); /* buffered, not flushed: replaced too */
    writer_t w = {.n = 2};
    snprintf(w.path, sizeof w.path, "%s.compact", s_path);
    CHECK(bk_journal_rewrite(j, writer, &w, err, sizeof err) == 0);
    CHECK(w.compact_existed); /* written beside, then renamed */
    CHECK(!exists(w.path));
    size_t want = MAGIC_LEN + rec_disk_len(&s_recs[2]) + rec_disk_len(&s_recs[1]);
    CHECK(bk_journal_size(j) == want && file_size(s_path) == (long)want);
    /* still locked, and appends go to the new file */
    CHECK(bk_journal_open(&j2, s_path, on_record, &s, &dropped, err, sizeof err) == -1);
    CHECK(strstr(err, "in use by another broker") != NULL);
    append(j, &s_recs[0]);
    bk_journal_close(&j);
    s = (seen_t){0};
    CHECK(bk_journal_open(&j, s_path, on_record, &s, &dropped, err, sizeof err) == 0);
    CHECK(s.n == 3 && dropped == 0);
    CHECK(seen_is(&s, 0, &s_recs[2]) && seen_is(&s, 1, &s_recs[1]) && seen_is(&s, 2, &s_recs[0]));

    /* a failed rewrite leaves the journal as it was, usable, without a
     * .compact file */
    long before = file_size(s_path);
    writer_t bad = {.n = 3, .fail = 1};
    snprintf(bad.path, sizeof bad.path, "%s.compact", s_path);
    err[0] = '\0';
    CHECK(bk_journal_rewrite(j, writer, &bad, err, sizeof err) == -1);
    CHECK(err[0] != '\0');
    CHECK(!exists(bad.path));
    CHECK(file_size(s_path) == before && bk_journal_size(j) == (uint64_t)before);
    append(j, &s_recs[1]);
    bk_journal_close(&j);
    s = (seen_t){0};
    CHECK(bk_journal_open(&j, s_path, on_record, &s, &dropped, err, sizeof err) == 0);
    CHECK(s.n == 4 && seen_is(&s, 3, &s_recs[1]));

    /* rewritten as nothing: only the magic */
    writer_t none = {.n = 0};
    snprintf(none.path, sizeof none.path, "%s.compact", s_path);
    CHECK(bk_journal_rewrite(j, writer, &none, err, sizeof err) == 0);
    CHECK(file_size(s_path) == MAGIC_LEN && bk_journal_size(j) == MAGIC_LEN);
    bk_journal_close(&j);
    s = (seen_t){0};
    CHECK(bk_journal_open(&j, s_path, on_record, &s, &dropped, err, sizeof err) == 0);
    CHECK(s.n == 0 && dropped == 0);
    bk_journal_close(&j);
}

/*  A record whose size on disk is exactly n (n >= HEAD_LEN + 1). */
static void
append_sized(bk_journal_t *j, size_t n)
{
    static char body[4096];
    bk_journal_append(j, 'X', NULL, 0, body, n - HEAD_LEN - 1);
}

static void
test_wants_rewrite(void)
{
    unlink(s_path);
    bk_journal_t *j = NULL;
    uint64_t dropped;
    char err[256];
    seen_t s = {0};
    CHECK(bk_journal_open(&j, s_path, on_record, &s, &dropped, err, sizeof err) == 0);
    /* base 8: the limit is max(16, min_bytes) */
    CHECK(bk_journal_wants_rewrite(j, 100) == 0);
    append_sized(j, 92); /* 100 */
    CHECK(bk_journal_flush(j) == 0 && bk_journal_size(j) == 100);
    CHECK(bk_journal_wants_rewrite(j, 100) == 0);
    CHECK(bk_journal_wants_rewrite(j, 99) == 1);
    CHECK(bk_journal_wants_rewrite(j, 4096) == 0);
    append_sized(j, 10); /* 110 */
    CHECK(bk_journal_flush(j) == 0);
    CHECK(bk_journal_wants_rewrite(j, 100) == 1);
    /* unflushed bytes do not count */
    append_sized(j, 1000);
    CHECK(bk_journal_wants_rewrite(j, 1000) == 0);
    CHECK(bk_journal_flush(j) == 0 && bk_journal_size(j) == 1110);
    CHECK(bk_journal_wants_rewrite(j, 1000) == 1);

    /* after a rewrite: twice its size, or min_bytes if larger */
    writer_t w = {.n = 0};
    snprintf(w.path, sizeof w.path, "%s.compact", s_path);
    CHECK(bk_journal_rewrite(j, writer, &w, err, sizeof err) == 0);
    CHECK(bk_journal_size(j) == MAGIC_LEN);
    CHECK(bk_journal_wants_rewrite(j, 100) == 0);
    bk_journal_close(&j);
    /* make a 200-byte journal, reopen: base 200 */
    unlink(s_path);
    CHECK(bk_journal_open(&j, s_path, on_record, &s, &dropped, err, sizeof err) == 0);
    append_sized(j, 192);
    bk_journal_close(&j);
    s = (seen_t){0};
    CHECK(bk_journal_open(&j, s_path, on_record, &s, &dropped, err, sizeof err) == 0);
    CHECK(s.n == 1 && bk_journal_size(j) == 200);
    append_sized(j, 200); /* 400 */
    CHECK(bk_journal_flush(j) == 0);
    CHECK(bk_journal_wants_rewrite(j, 10) == 0);
    CHECK(bk_journal_wants_rewrite(j, 399) == 0);
    CHECK(bk_journal_wants_rewrite(j, 400) == 0);
    CHECK(bk_journal_wants_rewrite(j, 401) == 0);
    append_sized(j, 9); /* 409 */
    CHECK(bk_journal_flush(j) == 0);
    CHECK(bk_journal_wants_rewrite(j, 10) == 1);
    CHECK(bk_journal_wants_rewrite(j, 409) == 0);
    CHECK(bk_journal_wants_rewrite(j, 408) == 1);

    /* a rewrite to a 300-byte file: base 300, limit 600 */
    bk_journal_close(&j);
    unlink(s_path);
    CHECK(bk_journal_open(&j, s_path, on_record, &s, &dropped, err, sizeof err) == 0);
    writer_t three = {.n = 3}; /* 8 + 31 + 412 + 29 = 480 bytes */
    snprintf(three.path, sizeof three.path, "%s.compact", s_path);
    CHECK(bk_journal_rewrite(j, writer, &three, err, sizeof err) == 0);
    uint64_t base = bk_journal_size(j);
    CHECK(base == MAGIC_LEN + rec_disk_len(&s_recs[0]) + rec_disk_len(&s_recs[1]) +
                      rec_disk_len(&s_recs[2]));
    append_sized(j, (size_t)base); /* exactly 2 * base */
    CHECK(bk_journal_flush(j) == 0);
    CHECK(bk_journal_wants_rewrite(j, 16) == 0);
    append_sized(j, HEAD_LEN + 1);
    CHECK(bk_journal_flush(j) == 0);
    CHECK(bk_journal_wants_rewrite(j, 16) == 1);
    bk_journal_close(&j);
}

/*  Opens a copy of the files as they are now (what a crash would leave:
 *  the journal and the scratch of a rewrite) and checks its records are
 *  want[0..n) in order, and that the scratch is gone afterwards. */
static int
crash_copy_is(const char *what, const rec_t *const *want, int n)
{
    char copy[160], copy_next[176], next[160];
    snprintf(copy, sizeof copy, "%s/crash", s_dir);
    snprintf(copy_next, sizeof copy_next, "%s/crash.compact", s_dir);
    snprintf(next, sizeof next, "%s.compact", s_path);
    size_t len;
    unsigned char *data = slurp(s_path, &len);
    int ok = data && spit(copy, data, len) == 0;
    free(data);
    unlink(copy_next);
    if (exists(next)) {
        data = slurp(next, &len);
        ok = ok && data && spit(copy_next, data, len) == 0;
        free(data);
    }
    bk_journal_t *j = NULL;
    uint64_t dropped = 99;
    char err[256] = "";
    seen_t s = {0};
    ok = ok && bk_journal_open(&j, copy, on_record, &s, &dropped, err, sizeof err) == 0;
    ok = ok && s.n == n && dropped == 0 && !exists(copy_next);
    for (int i = 0; ok && i < n; i++)
        ok = seen_is(&s, i, want[i]);
    if (j)
        bk_journal_close(&j);
    unlink(copy);
    if (!ok)
        fprintf(stderr, "crash %s: %d records (%s)\n", what, s.n, err);
    return ok;
}

/*  A rewrite step by step, as compact.c drives it, with a crash at every
 *  step: the journal PATH names always holds every record written. */
static void
test_rewrite_steps(void)
{
    const rec_t *a = &s_recs[0], *b = &s_recs[1], *c = &s_recs[2];
    rec_t snap = {'S', "the snapshot", 12, "of a and b", 10};
    unlink(s_path);
    bk_journal_t *j = NULL;
    uint64_t dropped;
    char err[256] = "";
    seen_t s = {0};
    CHECK(bk_journal_open(&j, s_path, on_record, &s, &dropped, err, sizeof err) == 0);
    append(j, a);
    append(j, b);
    CHECK(bk_journal_flush(j) == 0);
    uint64_t lsn0 = bk_journal_written(j);
    CHECK(bk_journal_appended(j) == lsn0);

    /* the writer's file, beside */
    CHECK(bk_journal_next_open(j, err, sizeof err) == 0);
    CHECK(bk_journal_next_open(j, err, sizeof err) == -1); /* one at a time */
    uint64_t from = bk_journal_size(j);
    CHECK(crash_copy_is("with an empty new file", (const rec_t *[]){a, b}, 2));
    bk_journal_t *w = bk_journal_next_writer(j);
    CHECK(w != NULL);
    append(w, &snap);
    CHECK(bk_journal_writer_close(&w) == 0 && w == NULL);
    CHECK(crash_copy_is("after the snapshot", (const rec_t *[]){a, b}, 2));

    /* records after the snapshot point go to the journal only */
    append(j, c);
    CHECK(bk_journal_appended(j) > bk_journal_written(j));
    CHECK(bk_journal_flush(j) == 0);
    CHECK(bk_journal_written(j) == lsn0 + rec_disk_len(c));
    CHECK(crash_copy_is("before the copy", (const rec_t *[]){a, b, c}, 3));

    /* the tail copied a few bytes at a time */
    int steps = 0, rc;
    while ((rc = bk_journal_next_copy(j, &from, 5)) == 0)
        steps++;
    CHECK(rc == 1 && steps == (int)(rec_disk_len(c) + 4) / 5 - 1);
    CHECK(from == bk_journal_size(j));
    CHECK(crash_copy_is("after the copy", (const rec_t *[]){a, b, c}, 3));

    /* both files written */
    bk_journal_next_dual(j);
    append(j, a);
    CHECK(bk_journal_flush(j) == 0);
    CHECK(crash_copy_is("writing both", (const rec_t *[]){a, b, c, a}, 4));

    /* renamed: PATH is the new file, complete */
    CHECK(bk_journal_install(bk_journal_next_path(j), bk_journal_path(j)) == 0);
    CHECK(crash_copy_is("after the rename", (const rec_t *[]){&snap, c, a}, 3));
    append(j, b); /* still both files until the switch */
    CHECK(bk_journal_flush(j) == 0);
    CHECK(crash_copy_is("renamed, not switched", (const rec_t *[]){&snap, c, a, b}, 4));

    bk_journal_next_switch(j);
    CHECK(bk_journal_next_fd(j) == -1);
    uint64_t size = bk_journal_size(j);
    CHECK(size == MAGIC_LEN + rec_disk_len(&snap) + rec_disk_len(c) + rec_disk_len(a) +
                      rec_disk_len(b));
    CHECK(file_size(s_path) == (long)size);
    CHECK(bk_journal_wants_rewrite(j, 16) == 0); /* its size is the new base */
    append(j, c);
    bk_journal_close(&j);
    CHECK(crash_copy_is("after the switch", (const rec_t *[]){&snap, c, a, b, c}, 5));

    /* an abort at any step before the rename leaves the journal as it was */
    s = (seen_t){0};
    CHECK(bk_journal_open(&j, s_path, on_record, &s, &dropped, err, sizeof err) == 0);
    CHECK(bk_journal_next_open(j, err, sizeof err) == 0);
    from = bk_journal_size(j);
    append(j, a);
    CHECK(bk_journal_flush(j) == 0);
    CHECK(bk_journal_next_copy(j, &from, 1000) == 1);
    bk_journal_next_dual(j);
    append(j, b);
    CHECK(bk_journal_flush(j) == 0);
    char next[160];
    snprintf(next, sizeof next, "%s.compact", s_path);
    CHECK(exists(next));
    bk_journal_next_abort(j);
    CHECK(!exists(next) && bk_journal_next_fd(j) == -1);
    append(j, c);
    bk_journal_close(&j);
    CHECK(crash_copy_is("after an abort", (const rec_t *[]){&snap, c, a, b, c, a, b, c}, 8));

    /* a leftover PATH.compact is removed at open */
    CHECK(spit(next, "TCJ1\n\0\0\0junk", 12) == 0);
    s = (seen_t){0};
    CHECK(bk_journal_open(&j, s_path, on_record, &s, &dropped, err, sizeof err) == 0);
    CHECK(s.n == 8 && !exists(next));
    bk_journal_close(&j);
}

/*  The records' checksum: the vectors of RFC 3720 (B.4), and any split of
 *  the input gives the same result (the 8-byte and the byte-wise paths). */
static void
test_crc32c(void)
{
    unsigned char buf[32];
    CHECK(crc32c(0, "123456789", 9) == 0xe3069283u);
    memset(buf, 0, sizeof buf);
    CHECK(crc32c(0, buf, 32) == 0x8a9136aau);
    memset(buf, 0xff, sizeof buf);
    CHECK(crc32c(0, buf, 32) == 0x62a8ab43u);
    for (int i = 0; i < 32; i++)
        buf[i] = (unsigned char)i;
    CHECK(crc32c(0, buf, 32) == 0x46dd794eu);
    for (int i = 0; i < 32; i++)
        buf[i] = (unsigned char)(31 - i);
    CHECK(crc32c(0, buf, 32) == 0x113fdb5cu);
    CHECK(crc32c(0, buf, 0) == 0);
    unsigned char big[300];
    for (size_t i = 0; i < sizeof big; i++)
        big[i] = (unsigned char)(i * 131 + 17);
    int bad = 0;
    for (size_t len = 0; len <= sizeof big; len += 7)
        for (size_t cut = 0; cut <= len; cut += 3)
            if (crc32c(crc32c(0, big, cut), big + cut, len - cut) != crc32c(0, big, len))
                bad++;
    CHECK(bad == 0);
}

int
main(void)
{
    recs_init();
    snprintf(s_dir, sizeof s_dir, "/tmp/tc-journal-XXXXXX");
    if (!mkdtemp(s_dir)) {
        perror("mkdtemp");
        return 1;
    }
    snprintf(s_path, sizeof s_path, "%s/journal", s_dir);
    test_round_trip();
    test_torn_tail();
    test_damaged_middle_record();
    test_refused_files();
    test_lock();
    test_rewrite();
    test_wants_rewrite();
    test_rewrite_steps();
    test_crc32c();
    char compact[160];
    snprintf(compact, sizeof compact, "%s.compact", s_path);
    unlink(compact);
    unlink(s_path);
    if (rmdir(s_dir) != 0) {
        fprintf(stderr, "rmdir %s: %s\n", s_dir, strerror(errno));
        CHECK(0);
    }
    return check_report();
}
