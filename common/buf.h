/*  buf.h: a growable byte buffer, reused across messages so the hot path
 *  does not allocate once it has warmed up.
 *
 *  Appending never fails silently: a failed allocation sets oom, later
 *  appends become no-ops, and buf_ok() tells the caller once at the end.
 */
#ifndef TC_BUF_H
#define TC_BUF_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

typedef struct buf {
    char *data;
    size_t len;
    size_t cap;
    int oom; /* set when an allocation failed */
} buf_t;

void buf_init(buf_t *b);
void buf_free(buf_t *b);
/*  Empties the buffer and clears oom; keeps the memory. */
void buf_reset(buf_t *b);
/*  Makes room for extra more bytes. 0, or -1 (and oom) on failure. */
int buf_reserve(buf_t *b, size_t extra);
void buf_append(buf_t *b, const void *p, size_t n);
void buf_append_str(buf_t *b, const char *s);
void buf_append_char(buf_t *b, char c);
void buf_printf(buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/*  1 if every append so far succeeded. */
int buf_ok(const buf_t *b);

/*  A msgpack-c write callback appending to the buf_t passed as data:
 *  msgpack_packer_init(&pk, &buf, buf_msgpack_write). Returns 0, or -1 once
 *  the buffer is out of memory. */
int buf_msgpack_write(void *data, const char *p, size_t n);

/*  Sends b's bytes from *off on the non-blocking socket fd, advancing *off.
 *  1: all sent; 0: the socket is full (wait for it to be writable); -1: the
 *  connection failed (errno, or 0 if send() returned 0). */
int buf_send(const buf_t *b, int fd, size_t *off);

#endif
