/*  dedup.c: the idempotency window over (producer, pseq).
 *
 *  Entries live in a ring in arrival order (the oldest is evicted when the
 *  ring is full) and an open-addressing index of ring positions finds them.
 *  Each index slot also holds the high half of its entry's key (the tag,
 *  from which the slot's home is taken too): probing and the backward
 *  shift of a removal read only the index, and the ring (24 MiB at the
 *  default window, a cache miss per access) is read once per lookup.
 *  A pair is identified by a keyed SipHash of producer and pseq, and its
 *  content by a second keyed hash of the message bytes: the same pair with
 *  the same bytes is a resend (answered with the seq it got), the same pair
 *  with other bytes is a worker bug (refused, never silently dropped).
 */
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "bigmem.h"
#include "broker.h"

typedef struct {
    uint64_t key;     /* 0: unused */
    uint64_t content; /* hash of the message bytes */
    uint64_t seq;
} s_entry_t;

#define S_PREFETCH 8 /* inserts ahead */

typedef struct {
    uint32_t pos; /* ring position + 1, 0: empty */
    uint32_t tag; /* key >> 32 */
} s_slot_t;

struct bk_dedup {
    s_entry_t *ring;
    uint32_t capacity, next; /* next: ring slot the next insert takes */
    uint32_t count;          /* pairs in the ring */
    s_slot_t *index;
    uint32_t index_mask;
    unsigned char key_k[crypto_shorthash_KEYBYTES];
    unsigned char content_k[crypto_shorthash_KEYBYTES];
};

bk_dedup_t *
bk_dedup_new(uint32_t capacity, const unsigned char keys[BK_DEDUP_KEYS])
{
    if (capacity == 0 || capacity > (1u << 28))
        return NULL;
    bk_dedup_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    uint32_t slots = 1;
    while (slots < capacity * 2)
        slots <<= 1;
    /* Both are tens of MiB at the default window and the index is filled
     * at random: on huge pages and faulted in at start (bigmem.h), or a
     * fresh broker's first seconds under load stall on page faults. A
     * compaction's child reads the ring only (bk_dedup_each): the index is
     * not forked, so the loop takes no copy-on-write faults on it. */
    self->capacity = capacity;
    self->index_mask = slots - 1;
    self->ring = bigmem_alloc((size_t)capacity * sizeof *self->ring, BIGMEM_NOW);
    self->index = bigmem_alloc((size_t)slots * sizeof *self->index, BIGMEM_NOW | BIGMEM_NOFORK);
    if (!self->ring || !self->index) {
        bk_dedup_destroy(&self);
        return NULL;
    }
    if (keys) {
        memcpy(self->key_k, keys, sizeof self->key_k);
        memcpy(self->content_k, keys + sizeof self->key_k, sizeof self->content_k);
    }
    else {
        randombytes_buf(self->key_k, sizeof self->key_k);
        randombytes_buf(self->content_k, sizeof self->content_k);
    }
    return self;
}

void
bk_dedup_destroy(bk_dedup_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    bk_dedup_t *self = *self_p;
    bigmem_free(self->ring, (size_t)self->capacity * sizeof *self->ring);
    bigmem_free(self->index, ((size_t)self->index_mask + 1) * sizeof *self->index);
    free(*self_p);
    *self_p = NULL;
}

static uint64_t
s_hash(const unsigned char *k, const void *p, size_t len)
{
    unsigned char out[crypto_shorthash_BYTES];
    uint64_t h;
    crypto_shorthash(out, p, len, k);
    memcpy(&h, out, sizeof h);
    return h;
}

static uint64_t
s_pair_key(const bk_dedup_t *self, const event_t *ev)
{
    unsigned char in[EVENT_PRODUCER_MAX + 8];
    size_t n = ev->producer.len < EVENT_PRODUCER_MAX ? ev->producer.len : EVENT_PRODUCER_MAX;
    memcpy(in, ev->producer.p, n);
    memcpy(in + n, &ev->pseq, 8);
    return s_hash(self->key_k, in, n + 8) | 1; /* never 0 */
}

static uint32_t
s_tag(uint64_t key)
{
    return (uint32_t)(key >> 32);
}

/*  Index slot holding key, or the empty slot where it would go. */
static uint32_t
s_slot(const bk_dedup_t *self, uint64_t key)
{
    uint32_t tag = s_tag(key);
    for (uint32_t i = tag & self->index_mask;; i = (i + 1) & self->index_mask) {
        const s_slot_t *x = &self->index[i];
        if (x->pos == 0 || (x->tag == tag && self->ring[x->pos - 1].key == key))
            return i;
    }
}

static void
s_index_remove(bk_dedup_t *self, uint64_t key)
{
    uint32_t mask = self->index_mask, i = s_slot(self, key);
    if (self->index[i].pos == 0)
        return;
    for (uint32_t j = (i + 1) & mask; self->index[j].pos; j = (j + 1) & mask) {
        uint32_t home = self->index[j].tag & mask;
        int movable = (i <= j) ? (home <= i || home > j) : (home <= i && home > j);
        if (movable) {
            self->index[i] = self->index[j];
            i = j;
        }
    }
    self->index[i].pos = 0;
}

void
bk_dedup_keys(const bk_dedup_t *self, unsigned char out[BK_DEDUP_KEYS])
{
    memcpy(out, self->key_k, sizeof self->key_k);
    memcpy(out + sizeof self->key_k, self->content_k, sizeof self->content_k);
}

void
bk_dedup_hash(const bk_dedup_t *self, const event_t *ev, const void *bytes, size_t len,
              bk_dedup_id_t *id)
{
    id->key = s_pair_key(self, ev);
    id->content = s_hash(self->content_k, bytes, len);
}

void
bk_dedup_prefetch(const bk_dedup_t *self, const bk_dedup_id_t *id)
{
    __builtin_prefetch(&self->index[s_tag(id->key) & self->index_mask]);
}

bk_dedup_result_t
bk_dedup_find(bk_dedup_t *self, const bk_dedup_id_t *id, uint64_t *seq)
{
    uint32_t pos = self->index[s_slot(self, id->key)].pos;
    if (pos == 0)
        return BK_DEDUP_NEW;
    const s_entry_t *e = &self->ring[pos - 1];
    if (e->content != id->content)
        return BK_DEDUP_CONFLICT;
    *seq = e->seq;
    return BK_DEDUP_RESEND;
}

void
bk_dedup_insert(bk_dedup_t *self, const bk_dedup_id_t *id, uint64_t seq)
{
    uint32_t pos = self->index[s_slot(self, id->key)].pos;
    if (pos) {
        /* Already known (a replayed journal can repeat a pair): update. */
        self->ring[pos - 1].content = id->content;
        self->ring[pos - 1].seq = seq;
        return;
    }
    s_entry_t *e = &self->ring[self->next];
    if (e->key)
        s_index_remove(self, e->key); /* the ring is full: evict the oldest */
    else
        self->count++;
    /* The index slot of the entry evicted a few inserts from now: a cache
     * miss now, overlapped with the work until then. */
    const s_entry_t *later = &self->ring[(self->next + S_PREFETCH) % self->capacity];
    if (later->key)
        __builtin_prefetch(&self->index[s_tag(later->key) & self->index_mask], 1);
    e->key = id->key;
    e->content = id->content;
    e->seq = seq;
    self->index[s_slot(self, id->key)] = (s_slot_t){self->next + 1, s_tag(id->key)};
    self->next = (self->next + 1) % self->capacity;
}

uint32_t
bk_dedup_count(const bk_dedup_t *self)
{
    return self->count;
}

int
bk_dedup_each(const bk_dedup_t *self, int (*fn)(void *arg, const bk_dedup_id_t *id, uint64_t seq),
              void *arg)
{
    for (uint32_t n = 0; n < self->capacity; n++) {
        const s_entry_t *e = &self->ring[(self->next + n) % self->capacity];
        if (!e->key)
            continue;
        bk_dedup_id_t id = {e->key, e->content};
        if (fn(arg, &id, e->seq) != 0)
            return -1;
    }
    return 0;
}
