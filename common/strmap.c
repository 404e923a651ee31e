/*  strmap.c: open addressing, linear probing, backward-shift deletion. */
#include "strmap.h"

#include <sodium.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    uint64_t hash;
    const void *key;
    size_t len;
    void *value; /* NULL: empty slot */
} s_slot_t;

struct strmap {
    s_slot_t *slots;
    size_t cap; /* power of two */
    size_t size;
    unsigned char sipkey[crypto_shorthash_KEYBYTES];
};

#define S_MIN_CAP 4 /* slots once the first entry arrives; an empty map has none */

static uint64_t
s_hash(const strmap_t *self, const void *key, size_t len)
{
    unsigned char out[crypto_shorthash_BYTES];
    crypto_shorthash(out, key, len, self->sipkey);
    uint64_t h;
    memcpy(&h, out, sizeof h);
    return h;
}

strmap_t *
strmap_new(void)
{
    strmap_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    randombytes_buf(self->sipkey, sizeof self->sipkey);
    return self;
}

void
strmap_destroy(strmap_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    free((*self_p)->slots);
    free(*self_p);
    *self_p = NULL;
}

static size_t
s_find(const strmap_t *self, uint64_t h, const void *key, size_t len)
{
    size_t mask = self->cap - 1;
    for (size_t i = h & mask;; i = (i + 1) & mask) {
        const s_slot_t *s = &self->slots[i];
        if (!s->value)
            return i;
        if (s->hash == h && s->len == len && memcmp(s->key, key, len) == 0)
            return i;
    }
}

static int
s_resize(strmap_t *self, size_t cap)
{
    s_slot_t *old = self->slots;
    size_t oldcap = self->cap;
    s_slot_t *slots = calloc(cap, sizeof *slots);
    if (!slots)
        return -1;
    self->slots = slots;
    self->cap = cap;
    for (size_t i = 0; i < oldcap; i++) {
        if (!old[i].value)
            continue;
        size_t mask = cap - 1, j = old[i].hash & mask;
        while (slots[j].value)
            j = (j + 1) & mask;
        slots[j] = old[i];
    }
    free(old);
    return 0;
}

void *
strmap_get(const strmap_t *self, const void *key, size_t len)
{
    if (self->size == 0)
        return NULL;
    uint64_t h = s_hash(self, key, len);
    return self->slots[s_find(self, h, key, len)].value;
}

int
strmap_put(strmap_t *self, const void *key, size_t len, void *value)
{
    if (!value)
        return -1;
    if ((self->size + 1) * 4 > self->cap * 3 &&
        s_resize(self, self->cap ? self->cap * 2 : S_MIN_CAP) != 0)
        return -1;
    uint64_t h = s_hash(self, key, len);
    s_slot_t *s = &self->slots[s_find(self, h, key, len)];
    if (!s->value)
        self->size++;
    s->hash = h;
    s->key = key;
    s->len = len;
    s->value = value;
    return 0;
}

void *
strmap_remove(strmap_t *self, const void *key, size_t len)
{
    if (self->size == 0)
        return NULL;
    uint64_t h = s_hash(self, key, len);
    size_t mask = self->cap - 1;
    size_t i = s_find(self, h, key, len);
    void *value = self->slots[i].value;
    if (!value)
        return NULL;
    /* Backward-shift: pull later members of the probe run into the hole. */
    for (size_t j = (i + 1) & mask; self->slots[j].value; j = (j + 1) & mask) {
        size_t home = self->slots[j].hash & mask;
        int movable = (i <= j) ? (home <= i || home > j) : (home <= i && home > j);
        if (movable) {
            self->slots[i] = self->slots[j];
            i = j;
        }
    }
    memset(&self->slots[i], 0, sizeof self->slots[i]);
    self->size--;
    if (self->size == 0) { /* an empty map keeps no slots */
        free(self->slots);
        self->slots = NULL;
        self->cap = 0;
    }
    else if (self->cap > S_MIN_CAP && self->size * 8 < self->cap)
        (void)s_resize(self, self->cap / 2); /* failing to shrink is harmless */
    return value;
}

size_t
strmap_size(const strmap_t *self)
{
    return self->size;
}

void *
strmap_next(const strmap_t *self, size_t *pos)
{
    while (*pos < self->cap) {
        void *v = self->slots[(*pos)++].value;
        if (v)
            return v;
    }
    return NULL;
}
