/*  strmap.h: hash map from byte-string keys to pointers.
 *
 *  Open addressing with linear probing and backward-shift deletion; keyed
 *  SipHash (libsodium crypto_shorthash, random key per map) so that user
 *  chosen ids cannot be crafted to collide. The map does not copy keys: the
 *  key memory must stay valid while its entry is in the map (keep the key
 *  inside the value). The table grows at 3/4 load and shrinks when mostly
 *  empty, so memory follows the live count; an empty map has no table at
 *  all (many maps are: a user's tasks while it has none). sodium_init()
 *  must have run.
 */
#ifndef TC_STRMAP_H
#define TC_STRMAP_H

#include <stddef.h>

typedef struct strmap strmap_t;

strmap_t *strmap_new(void);
/*  Frees the table (not the values) and sets *self_p to NULL. */
void strmap_destroy(strmap_t **self_p);

void *strmap_get(const strmap_t *self, const void *key, size_t len);
/*  Inserts or replaces. Returns 0, or -1 if memory ran out (map unchanged). */
int strmap_put(strmap_t *self, const void *key, size_t len, void *value);
/*  Removes the entry; returns its value, or NULL if absent. */
void *strmap_remove(strmap_t *self, const void *key, size_t len);
size_t strmap_size(const strmap_t *self);

/*  Iterates: set *pos = 0, then call until it returns NULL. The map must not
 *  change during the walk. */
void *strmap_next(const strmap_t *self, size_t *pos);

#endif
