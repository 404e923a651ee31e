/*  mbuild.h: building msgpack in tests, over msgpack-c's packer. */
#ifndef TC_MBUILD_H
#define TC_MBUILD_H

#include <msgpack.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    msgpack_sbuffer sb;
    msgpack_packer pk;
} mb_t;

static inline void
mb_init(mb_t *m)
{
    msgpack_sbuffer_init(&m->sb);
    msgpack_packer_init(&m->pk, &m->sb, msgpack_sbuffer_write);
}

static inline void
mb_reset(mb_t *m)
{
    msgpack_sbuffer_clear(&m->sb);
}

static inline void
mb_free(mb_t *m)
{
    msgpack_sbuffer_destroy(&m->sb);
}

static inline void
mb_map(mb_t *m, size_t n)
{
    msgpack_pack_map(&m->pk, n);
}

static inline void
mb_array(mb_t *m, size_t n)
{
    msgpack_pack_array(&m->pk, n);
}

static inline void
mb_strn(mb_t *m, const char *s, size_t len)
{
    msgpack_pack_str_with_body(&m->pk, s, len);
}

static inline void
mb_str(mb_t *m, const char *s)
{
    mb_strn(m, s, strlen(s));
}

/*  Appends bytes as they are (hand-made msgpack). */
static inline void
mb_raw(mb_t *m, const void *p, size_t len)
{
    msgpack_sbuffer_write(&m->sb, p, len);
}

/*  A string of n copies of c. */
static inline void
mb_fill(mb_t *m, char c, size_t n)
{
    char *s = malloc(n + 1);
    memset(s, c, n);
    mb_strn(m, s, n);
    free(s);
}

/*  A string on a bare packer. */
static inline void
pk_str(msgpack_packer *pk, const char *s)
{
    msgpack_pack_str_with_body(pk, s, strlen(s));
}

#endif
