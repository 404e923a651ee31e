/*  taskcast_link.h: what libtaskcast's clients share (private): one DEALER
 *  to a broker endpoint, opened and dropped as the lazy pirate pattern
 *  needs, and a random producer id. */
#ifndef TC_TASKCAST_LINK_H
#define TC_TASKCAST_LINK_H

#include <stddef.h>

typedef struct tc_link {
    void *zctx;
    void *sock; /* NULL between a timeout and the next attempt */
    char *endpoint;
} tc_link_t;

/*  A context and a connected DEALER. TC_OK, TC_EINVAL (endpoint not usable)
 *  or TC_ESYS; on failure, tc_link_fini() still frees what was made. */
int tc_link_init(tc_link_t *l, const char *endpoint);
/*  A fresh connected DEALER (after tc_link_close()). Same returns. */
int tc_link_open(tc_link_t *l);
/*  Drops the socket at once (linger 0), keeping errno. */
void tc_link_close(tc_link_t *l);
void tc_link_fini(tc_link_t *l);
/*  prefix followed by 16 random hex digits (outlen >= strlen(prefix) + 17). */
void tc_link_random_id(char *out, size_t outlen, const char *prefix);

#endif
