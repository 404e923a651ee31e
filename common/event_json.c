/*  event_json.c: the browser frame of an event, rendered straight from the
 *  msgpack bytes (no tree, no allocation beyond the caller's buffer).
 *
 *  Numbers are exact: integers are printed in full up to 64 bits, floats as
 *  the shortest text that reads back to the same value (a float 32 as a
 *  float 32), always with a '.' or an exponent so they stay floats.
 */
#include "event.h"

#include <math.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/*  buf_append() with the common case (room left) inlined: a frame is many
 *  small appends. */
static inline void
s_put(buf_t *out, const void *p, size_t n)
{
    if (n > 0 && n <= out->cap - out->len && !out->oom) {
        memcpy(out->data + out->len, p, n);
        out->len += n;
    }
    else
        buf_append(out, p, n);
}

static inline void
s_putc(buf_t *out, char c)
{
    if (out->len < out->cap && !out->oom)
        out->data[out->len++] = c;
    else
        buf_append_char(out, c);
}

/*  Appends a string literal (its length known at compile time). */
#define S_LIT(out, lit) s_put((out), (lit), sizeof(lit) - 1)

static void
s_u64(buf_t *out, uint64_t u)
{
    char tmp[20];
    size_t i = sizeof tmp;
    do {
        tmp[--i] = (char)('0' + u % 10);
        u /= 10;
    } while (u > 0);
    s_put(out, tmp + i, sizeof tmp - i);
}

static void
s_i64(buf_t *out, int64_t i)
{
    if (i < 0) {
        s_putc(out, '-');
        s_u64(out, (uint64_t)0 - (uint64_t)i); /* exact for INT64_MIN too */
    }
    else
        s_u64(out, (uint64_t)i);
}

/*  Shortest of %.{lo..hi}g that reads back as the same value. */
static int
s_shortest(char *tmp, size_t size, double d, int is_float32)
{
    int n = 0;
    int lo = is_float32 ? 6 : 15, hi = is_float32 ? 9 : 17;
    for (int prec = lo; prec <= hi; prec++) {
        n = snprintf(tmp, size, "%.*g", prec, d);
        if (is_float32 ? strtof(tmp, NULL) == (float)d : strtod(tmp, NULL) == d)
            break;
    }
    return n;
}

/*  Appends a finite float; returns -1 for NaN or infinity (not JSON). */
static int
s_float(buf_t *out, double d, int is_float32)
{
    if (!isfinite(d))
        return -1;
    /* Whole numbers below the precision, the common case, without snprintf:
     * the same text %.15g (%.6g) would give, plus ".0". */
    if (fabs(d) < (is_float32 ? 1e6 : 1e15) && d == trunc(d)) {
        if (d == 0 && signbit(d))
            s_putc(out, '-');
        s_i64(out, (int64_t)d);
        S_LIT(out, ".0");
        return 0;
    }
    char tmp[40];
    int n = s_shortest(tmp, sizeof tmp, d, is_float32);
    if (n <= 0 || (size_t)n >= sizeof tmp)
        return -1;
    s_put(out, tmp, (size_t)n);
    if (!memchr(tmp, '.', (size_t)n) && !memchr(tmp, 'e', (size_t)n) &&
        !memchr(tmp, 'E', (size_t)n))
        S_LIT(out, ".0");
    return 0;
}

/*  Standard base64 with padding, as a JSON string. */
static void
s_base64(buf_t *out, const char *p, size_t len)
{
    size_t enc = sodium_base64_ENCODED_LEN(len, sodium_base64_VARIANT_ORIGINAL);
    if (buf_reserve(out, enc + 2) != 0)
        return;
    out->data[out->len++] = '"';
    sodium_bin2base64(out->data + out->len, enc, (const unsigned char *)p, len,
                      sodium_base64_VARIANT_ORIGINAL);
    out->len += enc - 1; /* enc counts the NUL */
    out->data[out->len++] = '"';
}

void
event_json_string(buf_t *out, const char *s, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    s_putc(out, '"');
    size_t run = 0; /* start of the bytes not yet copied */
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != '"' && c != '\\')
            continue;
        s_put(out, s + run, i - run);
        run = i + 1;
        char esc[6] = {'\\', 0};
        size_t n = 2;
        switch (c) {
        case '"':
            esc[1] = '"';
            break;
        case '\\':
            esc[1] = '\\';
            break;
        case '\b':
            esc[1] = 'b';
            break;
        case '\f':
            esc[1] = 'f';
            break;
        case '\n':
            esc[1] = 'n';
            break;
        case '\r':
            esc[1] = 'r';
            break;
        case '\t':
            esc[1] = 't';
            break;
        default:
            memcpy(esc + 1, "u00", 3);
            esc[4] = hex[c >> 4];
            esc[5] = hex[c & 15];
            n = 6;
            break;
        }
        s_put(out, esc, n);
    }
    s_put(out, s + run, len - run);
    s_putc(out, '"');
}

/*  Renders one msgpack value (the data field) as JSON. Returns 0, or -1 if
 *  it is not what event_decode() accepts. */
static int
s_value(buf_t *out, const uint8_t *p, size_t len)
{
    uint64_t left[EVENT_DEPTH_MAX]; /* items still to render in each open container */
    uint8_t is_map[EVENT_DEPTH_MAX];
    int depth = 0;
    mp_reader_t r;
    mp_reader_init(&r, p, len);
    for (;;) {
        int is_key = depth > 0 && is_map[depth - 1] && left[depth - 1] % 2 == 0;
        int is_float32 = mp_reader_left(&r) > 0 && *r.p == 0xca;
        mp_value_t v;
        if (mp_read(&r, &v) != 0)
            return -1;
        if (depth > 0)
            left[depth - 1]--;
        if (is_key && v.type != MP_STR && v.type != MP_UINT && v.type != MP_INT)
            return -1;
        switch (v.type) {
        case MP_NIL:
            S_LIT(out, "null");
            break;
        case MP_BOOL:
            if (v.v.b)
                S_LIT(out, "true");
            else
                S_LIT(out, "false");
            break;
        case MP_UINT:
        case MP_INT:
            if (is_key)
                s_putc(out, '"');
            if (v.type == MP_UINT)
                s_u64(out, v.v.u);
            else
                s_i64(out, v.v.i);
            if (is_key)
                s_putc(out, '"');
            break;
        case MP_FLOAT:
            if (s_float(out, v.v.f, is_float32) != 0)
                return -1;
            break;
        case MP_STR:
            event_json_string(out, v.v.s.p, v.v.s.len);
            break;
        case MP_BIN:
            s_base64(out, v.v.s.p, v.v.s.len);
            break;
        case MP_ARRAY:
        case MP_MAP:
            s_putc(out, v.type == MP_MAP ? '{' : '[');
            if (v.v.n > 0) {
                if (depth == EVENT_DEPTH_MAX)
                    return -1;
                left[depth] = v.type == MP_MAP ? (uint64_t)v.v.n * 2 : v.v.n;
                is_map[depth] = v.type == MP_MAP;
                depth++;
                continue;
            }
            s_putc(out, v.type == MP_MAP ? '}' : ']');
            break;
        case MP_EXT:
            return -1;
        }
        /* One item is complete: close what it completed, then a separator. */
        while (depth > 0 && left[depth - 1] == 0) {
            depth--;
            s_putc(out, is_map[depth] ? '}' : ']');
        }
        if (depth == 0)
            break;
        s_putc(out, is_map[depth - 1] && left[depth - 1] % 2 == 1 ? ':' : ',');
    }
    return mp_reader_left(&r) == 0 ? 0 : -1;
}

int
event_render_json(const event_t *ev, buf_t *out)
{
    size_t start = out->len;
    S_LIT(out, "{\"type\":\"task\",\"seq\":");
    s_u64(out, ev->seq);
    S_LIT(out, ",\"task_id\":");
    event_json_string(out, ev->task_id.p, ev->task_id.len);
    S_LIT(out, ",\"status\":\"");
    const char *status = event_status_name(ev->status);
    s_put(out, status, strlen(status));
    s_putc(out, '"');
    int rc = 0;
    if (ev->has_progress) {
        const mp_value_t *v = &ev->progress;
        S_LIT(out, ",\"progress\":");
        if (v->type == MP_UINT)
            s_u64(out, v->v.u);
        else if (v->type == MP_INT)
            s_i64(out, v->v.i);
        else if (v->type == MP_FLOAT && isfinite(v->v.f))
            /* a value a float 32 holds exactly prints as one (event_pack_published
             * sends it as one): 1.1f shows as 1.1 */
            rc = s_float(out, v->v.f, fabs(v->v.f) <= 1e30 && (double)(float)v->v.f == v->v.f);
        else
            rc = -1;
    }
    if (ev->has_message) {
        S_LIT(out, ",\"message\":");
        event_json_string(out, ev->message.p, ev->message.len);
    }
    if (rc == 0 && ev->data) {
        S_LIT(out, ",\"data\":");
        rc = s_value(out, ev->data, ev->data_len);
    }
    if (ev->has_ts) {
        S_LIT(out, ",\"ts\":");
        s_i64(out, ev->ts);
    }
    s_putc(out, '}');
    if (rc != 0 || !buf_ok(out)) {
        if (out->len > start)
            out->len = start;
        return -1;
    }
    return 0;
}

int
event_json_value(buf_t *out, const void *p, size_t len)
{
    size_t start = out->len;
    if (s_value(out, p, len) != 0 || !buf_ok(out)) {
        out->len = start;
        return -1;
    }
    return 0;
}
