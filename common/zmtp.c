/*  zmtp.c: ZMTP 3.0, NULL mechanism (zmtp.h). */
#include <limits.h>
#include <string.h>
#include <strings.h>

#include "zmtp.h"

static void
s_put64(uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--, v >>= 8)
        p[i] = (uint8_t)v;
}

static void
s_put32(uint8_t *p, uint32_t v)
{
    for (int i = 3; i >= 0; i--, v >>= 8)
        p[i] = (uint8_t)v;
}

static uint32_t
s_get32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

void
zmtp_put_greeting(buf_t *out)
{
    uint8_t g[ZMTP_GREETING_LEN] = {0};
    g[0] = 0xFF;
    g[8] = 1; /* the padding reads as length 1 to a ZMTP 1.0 peer, as libzmq sends it */
    g[9] = 0x7F;
    g[10] = 3; /* version 3.0: subscriptions travel as messages */
    g[11] = 0;
    memcpy(g + 12, "NULL", 4);
    buf_append(out, g, sizeof g);
}

int
zmtp_check_greeting(const uint8_t g[ZMTP_GREETING_LEN], const char **why)
{
    static const uint8_t null_mech[20] = "NULL";
    if (g[0] != 0xFF || g[9] != 0x7F) {
        *why = "not a ZeroMQ peer (bad greeting signature)";
        return -1;
    }
    if (g[10] < 3) {
        *why = "the peer speaks a ZMTP older than 3.0";
        return -1;
    }
    if (memcmp(g + 12, null_mech, sizeof null_mech) != 0) {
        *why = "the peer wants a security mechanism other than NULL";
        return -1;
    }
    return 0;
}

static void
s_put_head(buf_t *out, uint8_t flags, size_t len)
{
    uint8_t h[9];
    if (len < 256) {
        h[0] = flags;
        h[1] = (uint8_t)len;
        buf_append(out, h, 2);
        return;
    }
    h[0] = flags | ZMTP_LONG;
    s_put64(h + 1, len);
    buf_append(out, h, 9);
}

void
zmtp_put_ready(buf_t *out, const char *socket_type)
{
    uint8_t body[64];
    size_t tlen = strlen(socket_type), n = 0;
    body[n++] = 5;
    memcpy(body + n, "READY", 5);
    n += 5;
    body[n++] = 11;
    memcpy(body + n, "Socket-Type", 11);
    n += 11;
    s_put32(body + n, (uint32_t)tlen);
    n += 4;
    memcpy(body + n, socket_type, tlen);
    n += tlen;
    s_put_head(out, ZMTP_COMMAND, n);
    buf_append(out, body, n);
}

int
zmtp_command_is(const uint8_t *body, size_t len, const char *name)
{
    size_t n = strlen(name);
    return len >= 1 + n && body[0] == n && memcmp(body + 1, name, n) == 0;
}

int
zmtp_check_ready(const uint8_t *body, size_t len, const char *peer_type, const char **why)
{
    if (!zmtp_command_is(body, len, "READY")) {
        *why = "the peer's first command is not READY";
        return -1;
    }
    size_t off = 6;
    int typed = 0;
    while (off < len) {
        size_t nlen = body[off++];
        if (len - off < nlen + 4) {
            *why = "a READY property is cut short";
            return -1;
        }
        const uint8_t *name = body + off;
        off += nlen;
        uint32_t vlen = s_get32(body + off);
        off += 4;
        if (len - off < vlen) {
            *why = "a READY property is cut short";
            return -1;
        }
        if (nlen == 11 && strncasecmp((const char *)name, "Socket-Type", 11) == 0) {
            typed = 1;
            if (peer_type && (vlen != strlen(peer_type) || memcmp(body + off, peer_type, vlen))) {
                *why = "the peer is not the expected kind of ZeroMQ socket";
                return -1;
            }
        }
        off += vlen;
    }
    if (!typed) {
        *why = "the peer's READY names no Socket-Type";
        return -1;
    }
    return 0;
}

void
zmtp_put_pong(buf_t *out, const uint8_t *ping, size_t len)
{
    /* PING: 4 "PING", 2-byte TTL, context; PONG echoes the context. */
    size_t ctx = len > 7 ? len - 7 : 0;
    if (ctx > 16)
        ctx = 16;
    uint8_t body[5 + 16];
    body[0] = 4;
    memcpy(body + 1, "PONG", 4);
    memcpy(body + 5, ping + 7, ctx);
    s_put_head(out, ZMTP_COMMAND, 5 + ctx);
    buf_append(out, body, 5 + ctx);
}

void
zmtp_put_frame(buf_t *out, const void *data, size_t len, int more)
{
    s_put_head(out, more ? ZMTP_MORE : 0, len);
    buf_append(out, data, len);
}

void
zmtp_put_subscription(buf_t *out, const void *topic, size_t len, int subscribe)
{
    uint8_t flag = subscribe ? 1 : 0;
    s_put_head(out, 0, len + 1);
    buf_append(out, &flag, 1);
    buf_append(out, topic, len);
}

long long
zmtp_read_frame(const uint8_t *p, size_t n, uint64_t max_len, zmtp_frame_t *f, uint64_t *need)
{
    *need = 2;
    if (n < 2)
        return 0;
    uint8_t flags = p[0];
    if (flags & ~(ZMTP_MORE | ZMTP_LONG | ZMTP_COMMAND))
        return -1;
    size_t head = 2;
    uint64_t len = p[1];
    if (flags & ZMTP_LONG) {
        head = 9;
        *need = head;
        if (n < head)
            return 0;
        len = 0;
        for (int i = 1; i <= 8; i++)
            len = len << 8 | p[i];
    }
    /* A body no buffer can hold is refused whatever max_len says, so that
     * head + len neither wraps *need nor overflows the result. */
    if (len > max_len || len > (uint64_t)LLONG_MAX - head)
        return -1;
    *need = head + len;
    if (n - head < len)
        return 0;
    f->flags = flags;
    f->body = p + head;
    f->len = len;
    return (long long)(head + len);
}

long long
zmtp_read_handshake(const uint8_t *p, size_t n, const char *peer_type, zmtp_frame_t *ready,
                    const char **why)
{
    if (n < ZMTP_GREETING_LEN)
        return 0;
    if (zmtp_check_greeting(p, why) != 0)
        return -1;
    uint64_t need;
    long long k = zmtp_read_frame(p + ZMTP_GREETING_LEN, n - ZMTP_GREETING_LEN, 4096, ready, &need);
    if (k == 0)
        return 0;
    *why = NULL;
    if (k < 0 || !(ready->flags & ZMTP_COMMAND) ||
        zmtp_check_ready(ready->body, ready->len, peer_type, why) != 0) {
        if (!*why)
            *why = "the peer's READY is malformed";
        return -1;
    }
    return ZMTP_GREETING_LEN + k;
}
