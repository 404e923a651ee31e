/*  test_strmap.c: the hash map (common/strmap.c): get/put/replace/remove,
 *  an empty map (no table until the first entry, none again after the
 *  last), growth and shrinking, iteration, and a randomised run against a
 *  plain array model with keys that share prefixes and lengths. */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "strmap.h"

static void
test_basics(void)
{
    strmap_t *m = strmap_new();
    CHECK(m && strmap_size(m) == 0);
    CHECK(strmap_get(m, "a", 1) == NULL && strmap_remove(m, "a", 1) == NULL);
    size_t pos = 0;
    CHECK(strmap_next(m, &pos) == NULL);
    int one = 1, two = 2;
    CHECK(strmap_put(m, "a", 1, &one) == 0 && strmap_get(m, "a", 1) == &one);
    CHECK(strmap_put(m, "a", 1, &two) == 0 && strmap_size(m) == 1); /* replaced */
    CHECK(strmap_get(m, "a", 1) == &two && strmap_get(m, "ab", 2) == NULL);
    CHECK(strmap_get(m, "", 0) == NULL);
    CHECK(strmap_put(m, "", 0, &one) == 0 && strmap_get(m, "", 0) == &one); /* empty key */
    CHECK(strmap_put(m, "b", 1, NULL) == -1);                                  /* no NULL values */
    CHECK(strmap_remove(m, "a", 1) == &two && strmap_remove(m, "", 0) == &one);
    CHECK(strmap_size(m) == 0 && strmap_get(m, "a", 1) == NULL);
    CHECK(strmap_put(m, "c", 1, &one) == 0 && strmap_get(m, "c", 1) == &one); /* usable again */
    strmap_destroy(&m);
    CHECK(m == NULL);
    strmap_destroy(&m);
}

static void
test_random_against_model(void)
{
    enum { K = 600, STEPS = 200000 };
    static char keys[K][16];
    static size_t lens[K];
    static int present[K], values[K];
    for (int i = 0; i < K; i++) {
        lens[i] = (size_t)snprintf(keys[i], sizeof keys[i], "u%d", i * 7);
        values[i] = i;
    }
    strmap_t *m = strmap_new();
    size_t count = 0;
    srand(5);
    for (int step = 0; step < STEPS; step++) {
        int i = rand() % K;
        int op = rand() % 3;
        if (op == 0) {
            CHECK(strmap_put(m, keys[i], lens[i], &values[i]) == 0);
            count += !present[i];
            present[i] = 1;
        }
        else if (op == 1) {
            void *v = strmap_remove(m, keys[i], lens[i]);
            CHECK(v == (present[i] ? &values[i] : NULL));
            count -= present[i];
            present[i] = 0;
        }
        else
            CHECK(strmap_get(m, keys[i], lens[i]) == (present[i] ? &values[i] : NULL));
        CHECK(strmap_size(m) == count);
        if (step % 5000 == 0) { /* the walk sees each entry once */
            size_t pos = 0, seen = 0;
            int *v;
            while ((v = strmap_next(m, &pos)) != NULL)
                seen += present[*v] ? 1 : 1000;
            CHECK(seen == count);
        }
        if (step == STEPS / 2) /* empty it: every entry goes */
            for (int k = 0; k < K; k++)
                if (present[k]) {
                    CHECK(strmap_remove(m, keys[k], lens[k]) == &values[k]);
                    present[k] = 0;
                    count--;
                }
    }
    strmap_destroy(&m);
}

int
main(void)
{
    if (sodium_init() < 0)
        return 1;
    test_basics();
    test_random_against_model();
    return check_report();
}
