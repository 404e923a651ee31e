/*  wsc.c: WebSocket client pieces without I/O (see wsc.h). */
#include "wsc.h"

#include <sodium.h>
#include <string.h>
#include <strings.h>

#include "sha1.h"

static const char s_guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

void
wsc_key_encode(const uint8_t raw[16], char key[WSC_KEY_LEN + 1])
{
    sodium_bin2base64(key, WSC_KEY_LEN + 1, raw, 16, sodium_base64_VARIANT_ORIGINAL);
}

void
wsc_accept_for(const char *key, char accept[WSC_ACCEPT_LEN + 1])
{
    char text[WSC_KEY_LEN + sizeof s_guid];
    size_t klen = strnlen(key, WSC_KEY_LEN);
    memcpy(text, key, klen);
    memcpy(text + klen, s_guid, sizeof s_guid - 1);
    uint8_t digest[SHA1_LEN];
    sha1_digest(text, klen + sizeof s_guid - 1, digest);
    sodium_bin2base64(accept, WSC_ACCEPT_LEN + 1, digest, sizeof digest,
                      sodium_base64_VARIANT_ORIGINAL);
}

/*  The value of a header line "Name: value" if name matches, else NULL. */
static const char *
s_header(const char *line, const char *eol, const char *name, size_t *vlen)
{
    size_t n = strlen(name);
    if ((size_t)(eol - line) <= n || strncasecmp(line, name, n) != 0 || line[n] != ':')
        return NULL;
    const char *v = line + n + 1;
    while (v < eol && (*v == ' ' || *v == '\t'))
        v++;
    const char *e = eol;
    while (e > v && (e[-1] == ' ' || e[-1] == '\t'))
        e--;
    *vlen = (size_t)(e - v);
    return v;
}

long
wsc_http_parse(const char *buf, size_t len, wsc_http_t *out)
{
    memset(out, 0, sizeof *out);
    if (len >= 5 && memcmp(buf, "HTTP/", 5) != 0)
        return -1;
    const char *end = memmem(buf, len, "\r\n\r\n", 4);
    if (!end)
        return len > 16384 ? -1 : 0;
    /* "HTTP/1.1 101 Switching Protocols" */
    const char *sp = memchr(buf, ' ', (size_t)(end - buf));
    if (!sp || end - sp < 4 || sp[1] < '1' || sp[1] > '5')
        return -1;
    out->status = (sp[1] - '0') * 100 + (sp[2] - '0') * 10 + (sp[3] - '0');
    const char *line = memchr(buf, '\n', (size_t)(end - buf + 2));
    while (line && line < end) {
        line++;
        const char *eol = memchr(line, '\r', (size_t)(end + 2 - line));
        if (!eol)
            break;
        size_t vlen;
        const char *v;
        if ((v = s_header(line, eol, "Sec-WebSocket-Accept", &vlen))) {
            out->accept = v;
            out->accept_len = vlen;
        }
        else if ((v = s_header(line, eol, "Upgrade", &vlen)))
            out->upgrade = vlen == 9 && strncasecmp(v, "websocket", 9) == 0;
        line = eol + 1;
    }
    return (long)(end - buf) + 4;
}

int
wsc_frame_parse(const uint8_t *buf, size_t len, wsc_frame_t *f)
{
    if (len < 2)
        return 0;
    memset(f, 0, sizeof *f);
    f->fin = buf[0] >> 7;
    f->opcode = buf[0] & 0x0F;
    if (buf[0] & 0x70)
        return -1; /* no extension was negotiated */
    int control = f->opcode >= 0x8;
    if (!(f->opcode <= WSC_OP_BINARY || (control && f->opcode <= WSC_OP_PONG)))
        return -1;
    f->masked = buf[1] >> 7;
    uint64_t plen = buf[1] & 0x7F;
    size_t pos = 2;
    if (plen == 126) {
        if (len < 4)
            return 0;
        plen = (uint64_t)buf[2] << 8 | buf[3];
        pos = 4;
    }
    else if (plen == 127) {
        if (len < 10)
            return 0;
        plen = 0;
        for (unsigned i = 0; i < 8; i++)
            plen = plen << 8 | buf[2 + i];
        if (plen >> 63)
            return -1;
        pos = 10;
    }
    if (control && (!f->fin || plen > 125))
        return -1;
    if (f->masked) {
        if (len < pos + 4)
            return 0;
        memcpy(f->mask, buf + pos, 4);
        pos += 4;
    }
    f->hdr_len = pos;
    f->payload_len = plen;
    return 1;
}

void
wsc_unmask(uint8_t *p, size_t len, const uint8_t mask[4], uint64_t offset)
{
    for (size_t i = 0; i < len; i++)
        p[i] ^= mask[(offset + i) & 3];
}

size_t
wsc_frame_build(uint8_t *out, int opcode, const void *payload, size_t len, uint32_t mask)
{
    size_t pos = 0;
    out[pos++] = (uint8_t)(0x80 | (opcode & 0x0F));
    if (len < 126)
        out[pos++] = (uint8_t)(0x80 | len);
    else if (len <= 0xFFFF) {
        out[pos++] = 0x80 | 126;
        out[pos++] = (uint8_t)(len >> 8);
        out[pos++] = (uint8_t)len;
    }
    else {
        out[pos++] = 0x80 | 127;
        for (int i = 7; i >= 0; i--)
            out[pos++] = (uint8_t)((uint64_t)len >> (8 * i));
    }
    uint8_t m[4] = {(uint8_t)(mask >> 24), (uint8_t)(mask >> 16), (uint8_t)(mask >> 8),
                    (uint8_t)mask};
    memcpy(out + pos, m, 4);
    pos += 4;
    if (len)
        memcpy(out + pos, payload, len);
    wsc_unmask(out + pos, len, m, 0);
    return pos + len;
}

int
wsc_find_bt(const char *p, size_t len, uint64_t *bt)
{
    const char *k = memmem(p, len, "\"bt\":", 5);
    if (!k)
        return 0;
    const char *e = p + len;
    k += 5;
    while (k < e && *k == ' ')
        k++;
    if (k >= e || *k < '0' || *k > '9')
        return 0;
    uint64_t v = 0;
    while (k < e && *k >= '0' && *k <= '9')
        v = v * 10u + (uint64_t)(*k++ - '0');
    *bt = v;
    return 1;
}

int
wsc_is_hello(const char *p, size_t len)
{
    static const char s_hello[] = "{\"type\":\"hello\"";
    return len >= sizeof s_hello - 1 && memcmp(p, s_hello, sizeof s_hello - 1) == 0;
}
