/*  buf.c: growable byte buffer. */
#include "buf.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

void
buf_init(buf_t *b)
{
    memset(b, 0, sizeof *b);
}

void
buf_free(buf_t *b)
{
    free(b->data);
    memset(b, 0, sizeof *b);
}

void
buf_reset(buf_t *b)
{
    b->len = 0;
    b->oom = 0;
}

int
buf_reserve(buf_t *b, size_t extra)
{
    if (b->oom)
        return -1;
    if (b->len + extra <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + extra)
        cap *= 2;
    char *p = realloc(b->data, cap);
    if (!p) {
        b->oom = 1;
        return -1;
    }
    b->data = p;
    b->cap = cap;
    return 0;
}

void
buf_append(buf_t *b, const void *p, size_t n)
{
    if (n == 0 || buf_reserve(b, n) != 0)
        return;
    memcpy(b->data + b->len, p, n);
    b->len += n;
}

void
buf_append_str(buf_t *b, const char *s)
{
    buf_append(b, s, strlen(s));
}

void
buf_append_char(buf_t *b, char c)
{
    if (buf_reserve(b, 1) != 0)
        return;
    b->data[b->len++] = c;
}

void
buf_printf(buf_t *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || buf_reserve(b, (size_t)n + 1) != 0)
        return;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

int
buf_ok(const buf_t *b)
{
    return !b->oom;
}

int
buf_msgpack_write(void *data, const char *p, size_t n)
{
    buf_t *b = data;
    buf_append(b, p, n);
    return b->oom ? -1 : 0;
}

int
buf_send(const buf_t *b, int fd, size_t *off)
{
    while (*off < b->len) {
        ssize_t n = send(fd, b->data + *off, b->len - *off, MSG_NOSIGNAL);
        if (n > 0) {
            *off += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return 0;
        if (n == 0)
            errno = 0;
        return -1;
    }
    return 1;
}
