/*  tally.c: counts by name. */
#include "tally.h"

#include <string.h>

void
tally_add(tally_t *t, const char *key, uint64_t count)
{
    for (unsigned i = 0; i < t->n; i++)
        if (strncmp(t->e[i].key, key, TALLY_KEYLEN - 1) == 0) {
            t->e[i].count += count;
            return;
        }
    if (t->n == TALLY_KEYS - 1 && strcmp(key, "other") != 0) {
        tally_add(t, "other", count);
        return;
    }
    unsigned i = t->n++;
    strncpy(t->e[i].key, key, TALLY_KEYLEN - 1);
    t->e[i].key[TALLY_KEYLEN - 1] = '\0';
    t->e[i].count = count;
}

void
tally_merge(tally_t *dst, const tally_t *src)
{
    for (unsigned i = 0; i < src->n; i++)
        tally_add(dst, src->e[i].key, src->e[i].count);
}

uint64_t
tally_total(const tally_t *t)
{
    uint64_t sum = 0;
    for (unsigned i = 0; i < t->n; i++)
        sum += t->e[i].count;
    return sum;
}

uint64_t
tally_get(const tally_t *t, const char *key)
{
    for (unsigned i = 0; i < t->n; i++)
        if (strcmp(t->e[i].key, key) == 0)
            return t->e[i].count;
    return 0;
}

void
tally_json(const tally_t *t, buf_t *out)
{
    buf_append_char(out, '{');
    for (unsigned i = 0; i < t->n; i++)
        buf_printf(out, "%s\"%s\":%llu", i ? "," : "", t->e[i].key,
                   (unsigned long long)t->e[i].count);
    buf_append_char(out, '}');
}
