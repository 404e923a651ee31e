/*  event.c: decoding and validating task events (the published form is
 *  written by event_pack.c).
 *
 *  event_decode() is one pass over the bytes: each known key is checked as it
 *  is read, "data" is walked once (structure, depth, JSON rules) and kept as
 *  a raw span. After the first field error the rest of the map is still
 *  walked, only structurally, so that a damaged message is always reported
 *  as malformed whatever it contains.
 */
#include "event.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

typedef enum {
    S_F_TASK_ID,
    S_F_USER_ID,
    S_F_STATUS,
    S_F_PROGRESS,
    S_F_MESSAGE,
    S_F_DATA,
    S_F_TS,
    S_F_PRODUCER,
    S_F_PSEQ,
    S_F_SEQ,
    S_F_EPOCH,
    S_F_UNKNOWN
} s_field_t;

static const char *const s_field_names[] = {"task_id", "user_id", "status", "progress",
                                            "message", "data",    "ts",     "producer",
                                            "pseq",    "seq",     "epoch"};

static const char *const s_status_names[] = {"queued", "running", "succeeded", "failed",
                                             "cancelled"};

/*  Results of the field checks below. */
#define S_OK        0
#define S_BAD       -1 /* the value broke a rule: err is filled, the value was consumed */
#define S_MALFORMED -2 /* the bytes are not well-formed msgpack */

/*  How much of an unknown key the detail quotes. */

static void s_fail(event_error_t *err, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
s_fail(event_error_t *err, const char *code, const char *fmt, ...)
{
    err->code = code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->detail, sizeof err->detail, fmt, ap);
    va_end(ap);
}

void
event_quote(char *out, size_t outlen, const char *s, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    size_t w = 0;
    for (size_t i = 0; i < len && i < EVENT_QUOTE_MAX; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c < 0x7f && c != '\'' && c != '\\') {
            if (w + 1 >= outlen)
                break;
            out[w++] = (char)c;
        }
        else {
            if (w + 4 >= outlen)
                break;
            out[w++] = '\\';
            out[w++] = 'x';
            out[w++] = hex[c >> 4];
            out[w++] = hex[c & 15];
        }
    }
    if (len > EVENT_QUOTE_MAX && w + 3 < outlen) {
        memcpy(out + w, "...", 3);
        w += 3;
    }
    out[w] = '\0';
}

static const char *
s_type_name(mp_type_t t)
{
    switch (t) {
    case MP_NIL:
        return "nil";
    case MP_BOOL:
        return "a boolean";
    case MP_UINT:
    case MP_INT:
        return "an integer";
    case MP_FLOAT:
        return "a float";
    case MP_STR:
        return "a string";
    case MP_BIN:
        return "binary";
    case MP_ARRAY:
        return "an array";
    case MP_MAP:
        return "a map";
    case MP_EXT:
        return "an extension type";
    }
    return "unknown";
}

/*  Walks count items without tracking depth: O(1) memory, one step per item.
 *  A pending count larger than the bytes left can never be satisfied. */
static int
s_walk(mp_reader_t *r, uint64_t count)
{
    while (count > 0) {
        mp_value_t v;
        if (mp_read(r, &v) != 0)
            return -1;
        count--;
        if (v.type == MP_ARRAY)
            count += v.v.n;
        else if (v.type == MP_MAP)
            count += (uint64_t)v.v.n * 2;
        if (count > mp_reader_left(r))
            return -1;
    }
    return 0;
}

/*  After reading a value's header: walks a container's elements. */
static int
s_finish(mp_reader_t *r, const mp_value_t *v)
{
    if (v->type == MP_ARRAY)
        return s_walk(r, v->v.n);
    if (v->type == MP_MAP)
        return s_walk(r, (uint64_t)v->v.n * 2);
    return 0;
}

/*  Reports a value of the wrong type for field f (and consumes it). */
static int
s_wrong_type(mp_reader_t *r, const mp_value_t *v, s_field_t f, const char *want, event_error_t *err)
{
    if (s_finish(r, v) != 0)
        return S_MALFORMED;
    s_fail(err, EVENT_E_WRONG_TYPE, "field '%s' must be %s, not %s", s_field_names[f], want,
           s_type_name(v->type));
    return S_BAD;
}

int
event_utf8_valid(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s, *end = p + len;
    while (p < end) {
        /* ASCII fast path, 8 bytes at a time. */
        while (end - p >= 8) {
            uint64_t w;
            memcpy(&w, p, sizeof w);
            if (w & 0x8080808080808080ull)
                break;
            p += 8;
        }
        if (p == end)
            break;
        unsigned char c = *p;
        if (c < 0x80) {
            p++;
            continue;
        }
        size_t n;
        unsigned char lo = 0x80, hi = 0xbf; /* allowed range of the second byte */
        if (c >= 0xc2 && c <= 0xdf)
            n = 2;
        else if (c >= 0xe0 && c <= 0xef) {
            n = 3;
            if (c == 0xe0)
                lo = 0xa0; /* overlong */
            else if (c == 0xed)
                hi = 0x9f; /* surrogates */
        }
        else if (c >= 0xf0 && c <= 0xf4) {
            n = 4;
            if (c == 0xf0)
                lo = 0x90; /* overlong */
            else if (c == 0xf4)
                hi = 0x8f; /* above U+10FFFF */
        }
        else
            return 0; /* continuation byte, overlong 0xc0/0xc1, or 0xf5.. */
        if ((size_t)(end - p) < n || p[1] < lo || p[1] > hi)
            return 0;
        for (size_t i = 2; i < n; i++)
            if ((p[i] & 0xc0) != 0x80)
                return 0;
        p += n;
    }
    return 1;
}

/*  Bytes allowed in a user id: [A-Za-z0-9_.-] (a table: the broker checks
 *  every event's user id, and every subscription's). */
static const unsigned char s_user_id_chars[256] = {
    ['-'] = 1, ['.'] = 1, ['0'] = 1, ['1'] = 1, ['2'] = 1, ['3'] = 1, ['4'] = 1, ['5'] = 1,
    ['6'] = 1, ['7'] = 1, ['8'] = 1, ['9'] = 1, ['A'] = 1, ['B'] = 1, ['C'] = 1, ['D'] = 1,
    ['E'] = 1, ['F'] = 1, ['G'] = 1, ['H'] = 1, ['I'] = 1, ['J'] = 1, ['K'] = 1, ['L'] = 1,
    ['M'] = 1, ['N'] = 1, ['O'] = 1, ['P'] = 1, ['Q'] = 1, ['R'] = 1, ['S'] = 1, ['T'] = 1,
    ['U'] = 1, ['V'] = 1, ['W'] = 1, ['X'] = 1, ['Y'] = 1, ['Z'] = 1, ['_'] = 1, ['a'] = 1,
    ['b'] = 1, ['c'] = 1, ['d'] = 1, ['e'] = 1, ['f'] = 1, ['g'] = 1, ['h'] = 1, ['i'] = 1,
    ['j'] = 1, ['k'] = 1, ['l'] = 1, ['m'] = 1, ['n'] = 1, ['o'] = 1, ['p'] = 1, ['q'] = 1,
    ['r'] = 1, ['s'] = 1, ['t'] = 1, ['u'] = 1, ['v'] = 1, ['w'] = 1, ['x'] = 1, ['y'] = 1,
    ['z'] = 1,
};

int
event_user_id_valid(const char *s, size_t len)
{
    if (len < 1 || len > EVENT_USER_ID_MAX)
        return 0;
    unsigned char ok = 1;
    for (size_t i = 0; i < len; i++)
        ok &= s_user_id_chars[(unsigned char)s[i]];
    return ok;
}

const char *
event_status_name(event_status_t status)
{
    if ((unsigned)status >= sizeof s_status_names / sizeof s_status_names[0])
        return "unknown";
    return s_status_names[status];
}

int
event_status_is_terminal(event_status_t status)
{
    return status == EVENT_SUCCEEDED || status == EVENT_FAILED || status == EVENT_CANCELLED;
}

static s_field_t
s_lookup(const char *p, uint32_t len, event_origin_t origin)
{
    s_field_t f = S_F_UNKNOWN;
    switch (len) {
    case 2:
        f = memcmp(p, "ts", 2) == 0 ? S_F_TS : S_F_UNKNOWN;
        break;
    case 3:
        f = memcmp(p, "seq", 3) == 0 ? S_F_SEQ : S_F_UNKNOWN;
        break;
    case 4:
        f = memcmp(p, "data", 4) == 0   ? S_F_DATA
            : memcmp(p, "pseq", 4) == 0 ? S_F_PSEQ
                                        : S_F_UNKNOWN;
        break;
    case 5:
        f = memcmp(p, "epoch", 5) == 0 ? S_F_EPOCH : S_F_UNKNOWN;
        break;
    case 6:
        f = memcmp(p, "status", 6) == 0 ? S_F_STATUS : S_F_UNKNOWN;
        break;
    case 7:
        f = memcmp(p, "task_id", 7) == 0   ? S_F_TASK_ID
            : memcmp(p, "user_id", 7) == 0 ? S_F_USER_ID
            : memcmp(p, "message", 7) == 0 ? S_F_MESSAGE
                                           : S_F_UNKNOWN;
        break;
    case 8:
        f = memcmp(p, "progress", 8) == 0   ? S_F_PROGRESS
            : memcmp(p, "producer", 8) == 0 ? S_F_PRODUCER
                                            : S_F_UNKNOWN;
        break;
    default:
        break;
    }
    if (origin == EVENT_FROM_WORKER && (f == S_F_SEQ || f == S_F_EPOCH))
        return S_F_UNKNOWN;
    if (origin == EVENT_FROM_BROKER && (f == S_F_PRODUCER || f == S_F_PSEQ))
        return S_F_UNKNOWN;
    return f;
}

/*  SWAR: the high bit of each byte of the result is set where that byte of
 *  w is below n, or above m (bytes of w below 0x80; others count as above). */
#define S_ONES 0x0101010101010101ull
#define S_HIGH 0x8080808080808080ull

static uint64_t
s_outside(uint64_t w, unsigned n, unsigned m)
{
    uint64_t below = (w - S_ONES * n) & ~w;
    uint64_t above = (w + S_ONES * (127 - m)) | w;
    return (below | above) & S_HIGH;
}

/*  1 if some byte is outside n..m (n >= 1, m <= 0x7e), 8 bytes at a time. */
static int
s_any_outside(const char *s, size_t len, unsigned n, unsigned m)
{
    size_t i = 0;
    for (; i + 8 <= len; i += 8) {
        uint64_t w;
        memcpy(&w, s + i, sizeof w);
        if (s_outside(w, n, m))
            return 1;
    }
    for (; i < len; i++)
        if ((unsigned char)s[i] < n || (unsigned char)s[i] > m)
            return 1;
    return 0;
}

/*  1 if every byte is printable ASCII without space (0x21..0x7e). */
static int
s_printable(const char *s, size_t len)
{
    return !s_any_outside(s, len, 0x21, 0x7e);
}

/*  1 if a byte is a control character (below 0x20, or 0x7f); UTF-8 bytes
 *  (0x80 and up) are not. */
static int
s_has_control(const char *s, size_t len)
{
    for (size_t i = 0; i + 8 <= len; i += 8) {
        uint64_t w;
        memcpy(&w, s + i, sizeof w);
        if (!(w & S_HIGH) && !s_outside(w, 0x20, 0x7e))
            continue; /* 8 printable ASCII bytes */
        for (size_t k = i; k < i + 8; k++)
            if ((unsigned char)s[k] < 0x20 || s[k] == 0x7f)
                return 1;
    }
    for (size_t i = len & ~(size_t)7; i < len; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            return 1;
    return 0;
}

/*  A string field of min..max bytes (min is 0 or 1). */
static int
s_text(mp_reader_t *r, const mp_value_t *v, s_field_t f, uint32_t min, uint32_t max,
       event_text_t *out, event_error_t *err)
{
    const char *name = s_field_names[f];
    if (v->type != MP_STR)
        return s_wrong_type(r, v, f, "a string", err);
    if (v->v.s.len < min) {
        s_fail(err, EVENT_E_INVALID_VALUE, "field '%s' must not be empty", name);
        return S_BAD;
    }
    if (v->v.s.len > max) {
        s_fail(err, EVENT_E_TOO_LARGE, "field '%s' must be at most %u bytes, not %u", name,
               (unsigned)max, (unsigned)v->v.s.len);
        return S_BAD;
    }
    out->p = v->v.s.p;
    out->len = v->v.s.len;
    return S_OK;
}

/*  An unsigned integer field; a negative integer is out of range. */
static int
s_uint(mp_reader_t *r, const mp_value_t *v, s_field_t f, uint64_t min, uint64_t max, uint64_t *out,
       event_error_t *err)
{
    if (v->type != MP_UINT && v->type != MP_INT)
        return s_wrong_type(r, v, f, "an integer", err);
    if (v->type == MP_INT || v->v.u < min || v->v.u > max) {
        s_fail(err, EVENT_E_INVALID_VALUE, "field '%s' must be an integer from %llu to %llu",
               s_field_names[f], (unsigned long long)min, (unsigned long long)max);
        return S_BAD;
    }
    *out = v->v.u;
    return S_OK;
}

/*  Walks the "data" value: well-formed, at most EVENT_DEPTH_MAX containers
 *  deep, and representable as JSON. The first rule broken is reported (S_BAD)
 *  but the walk goes on to the end of the value. */
static int
s_data(mp_reader_t *r, event_error_t *err)
{
    uint64_t left[EVENT_DEPTH_MAX]; /* items still to read in each open container */
    uint8_t is_map[EVENT_DEPTH_MAX];
    int depth = 0;
    int rc = S_OK;
    do {
        int is_key = depth > 0 && is_map[depth - 1] && left[depth - 1] % 2 == 0;
        mp_value_t v;
        if (mp_read(r, &v) != 0)
            return S_MALFORMED;
        if (depth > 0)
            left[depth - 1]--;
        if (rc == S_OK) {
            if (is_key && v.type != MP_STR && v.type != MP_UINT && v.type != MP_INT) {
                s_fail(err, EVENT_E_INVALID_VALUE,
                       "field 'data' has a map key that is %s: keys must be strings or "
                       "integers",
                       s_type_name(v.type));
                rc = S_BAD;
            }
            else if (v.type == MP_EXT) {
                s_fail(err, EVENT_E_INVALID_VALUE,
                       "field 'data' contains an extension type, which JSON cannot represent");
                rc = S_BAD;
            }
            else if (v.type == MP_FLOAT && !isfinite(v.v.f)) {
                s_fail(err, EVENT_E_INVALID_VALUE,
                       "field 'data' contains a float that is not finite");
                rc = S_BAD;
            }
            else if (v.type == MP_STR && !event_utf8_valid(v.v.s.p, v.v.s.len)) {
                s_fail(err, EVENT_E_INVALID_UTF8, "field 'data' contains a %s that is not UTF-8",
                       is_key ? "map key" : "string");
                rc = S_BAD;
            }
        }
        if (v.type == MP_ARRAY || v.type == MP_MAP) {
            uint64_t items = v.type == MP_MAP ? (uint64_t)v.v.n * 2 : v.v.n;
            if (depth == EVENT_DEPTH_MAX) {
                if (rc == S_OK)
                    s_fail(err, EVENT_E_TOO_LARGE,
                           "field 'data' must not nest more than %d arrays or maps",
                           EVENT_DEPTH_MAX);
                for (int d = 0; d < depth; d++)
                    items += left[d];
                return s_walk(r, items) == 0 ? S_BAD : S_MALFORMED;
            }
            if (items > 0) {
                left[depth] = items;
                is_map[depth] = v.type == MP_MAP;
                depth++;
            }
        }
        while (depth > 0 && left[depth - 1] == 0)
            depth--;
    } while (depth > 0);
    return rc;
}

/*  Reads and checks the value of field f. */
static int
s_field(mp_reader_t *r, event_t *ev, s_field_t f, event_origin_t origin, event_error_t *err)
{
    const char *name = s_field_names[f];
    const uint8_t *start = r->p;
    mp_value_t v;
    if (mp_read(r, &v) != 0)
        return S_MALFORMED;

    if (v.type == MP_NIL) {
        int required =
            f == S_F_TASK_ID || f == S_F_USER_ID || f == S_F_STATUS ||
            (origin == EVENT_FROM_BROKER && (f == S_F_SEQ || f == S_F_EPOCH || f == S_F_TS));
        if (!required)
            return S_OK; /* nil for an optional field: absent */
        s_fail(err, EVENT_E_WRONG_TYPE, "field '%s' is required and must not be nil", name);
        return S_BAD;
    }

    int rc;
    switch (f) {
    case S_F_TASK_ID:
        rc = s_text(r, &v, f, 1, EVENT_TASK_ID_MAX, &ev->task_id, err);
        if (rc != S_OK)
            return rc;
        if (!event_utf8_valid(v.v.s.p, v.v.s.len)) {
            s_fail(err, EVENT_E_INVALID_UTF8, "field 'task_id' must be valid UTF-8");
            return S_BAD;
        }
        if (s_has_control(v.v.s.p, v.v.s.len)) {
            s_fail(err, EVENT_E_INVALID_VALUE,
                   "field 'task_id' must not contain control characters");
            return S_BAD;
        }
        return S_OK;

    case S_F_USER_ID:
        rc = s_text(r, &v, f, 1, EVENT_USER_ID_MAX, &ev->user_id, err);
        if (rc != S_OK)
            return rc;
        if (!event_user_id_valid(v.v.s.p, v.v.s.len)) {
            s_fail(err, EVENT_E_INVALID_VALUE,
                   "field 'user_id' must contain only A-Z, a-z, 0-9, '_', '.' and '-'");
            return S_BAD;
        }
        return S_OK;

    case S_F_STATUS:
        if (v.type != MP_STR)
            return s_wrong_type(r, &v, f, "a string", err);
        for (size_t i = 0; i < sizeof s_status_names / sizeof s_status_names[0]; i++) {
            const char *st = s_status_names[i];
            if (v.v.s.len > 0 && v.v.s.p[0] == st[0] && mp_str_eq(&v, st)) {
                ev->status = (event_status_t)i;
                return S_OK;
            }
        }
        s_fail(err, EVENT_E_INVALID_VALUE,
               "field 'status' must be one of queued, running, succeeded, failed, cancelled");
        return S_BAD;

    case S_F_PROGRESS:
        if (v.type != MP_UINT && v.type != MP_INT && v.type != MP_FLOAT)
            return s_wrong_type(r, &v, f, "a number", err);
        if ((v.type == MP_UINT && v.v.u > 100) || v.type == MP_INT ||
            (v.type == MP_FLOAT && !(v.v.f >= 0.0 && v.v.f <= 100.0))) {
            s_fail(err, EVENT_E_INVALID_VALUE, "field 'progress' must be a number from 0 to 100");
            return S_BAD;
        }
        ev->has_progress = 1;
        ev->progress = v;
        return S_OK;

    case S_F_MESSAGE:
        rc = s_text(r, &v, f, 0, EVENT_MESSAGE_MAX, &ev->message, err);
        if (rc != S_OK)
            return rc;
        if (!event_utf8_valid(v.v.s.p, v.v.s.len)) {
            s_fail(err, EVENT_E_INVALID_UTF8, "field 'message' must be valid UTF-8");
            return S_BAD;
        }
        ev->has_message = 1;
        return S_OK;

    case S_F_DATA: {
        *r = (mp_reader_t){start, r->end}; /* walk it again from its first byte */
        rc = s_data(r, err);
        if (rc == S_MALFORMED)
            return rc;
        size_t len = (size_t)(r->p - start);
        if (len > EVENT_DATA_MAX) {
            s_fail(err, EVENT_E_TOO_LARGE,
                   "field 'data' must be at most %d bytes of msgpack, not %zu", EVENT_DATA_MAX,
                   len);
            return S_BAD;
        }
        if (rc != S_OK)
            return rc;
        ev->data = start;
        ev->data_len = (uint32_t)len;
        return S_OK;
    }

    case S_F_TS: {
        uint64_t ts;
        rc = s_uint(r, &v, f, 0, INT64_MAX, &ts, err);
        if (rc != S_OK)
            return rc;
        ev->has_ts = 1;
        ev->ts = (int64_t)ts;
        return S_OK;
    }

    case S_F_PRODUCER:
        rc = s_text(r, &v, f, 1, EVENT_PRODUCER_MAX, &ev->producer, err);
        if (rc != S_OK)
            return rc;
        if (!s_printable(v.v.s.p, v.v.s.len)) {
            s_fail(err, EVENT_E_INVALID_VALUE,
                   "field 'producer' must be printable ASCII without spaces");
            return S_BAD;
        }
        ev->has_producer = 1;
        return S_OK;

    case S_F_PSEQ:
        return s_uint(r, &v, f, 0, UINT64_MAX, &ev->pseq, err);

    case S_F_SEQ:
        return s_uint(r, &v, f, 1, UINT64_MAX, &ev->seq, err);

    case S_F_EPOCH:
        rc = s_text(r, &v, f, 1, EVENT_EPOCH_MAX, &ev->epoch, err);
        if (rc != S_OK)
            return rc;
        if (!s_printable(v.v.s.p, v.v.s.len)) {
            s_fail(err, EVENT_E_INVALID_VALUE,
                   "field 'epoch' must be printable ASCII without spaces");
            return S_BAD;
        }
        return S_OK;

    case S_F_UNKNOWN:
        break;
    }
    return S_MALFORMED; /* not reached: unknown keys are handled by the caller */
}

int
event_decode(event_t *ev, const void *buf, size_t len, event_origin_t origin, event_error_t *err)
{
    event_error_t scratch;
    if (!err)
        err = &scratch;
    memset(ev, 0, sizeof *ev);
    err->code = NULL;
    err->detail[0] = '\0';

    if (len > EVENT_WIRE_MAX) {
        s_fail(err, EVENT_E_TOO_LARGE, "event must be at most %d bytes, not %zu", EVENT_WIRE_MAX,
               len);
        return -1;
    }
    mp_reader_t r;
    mp_reader_init(&r, buf, len);
    mp_value_t top;
    if (mp_read(&r, &top) != 0)
        goto malformed;
    if (top.type != MP_MAP) {
        s_fail(err, EVENT_E_NOT_A_MAP, "event must be a msgpack map, not %s",
               s_type_name(top.type));
        return -1;
    }

    unsigned seen = 0;    /* keys given */
    unsigned present = 0; /* keys given with a valid value other than nil */
    int bad = 0;          /* a field error is already in err */
    for (uint32_t i = 0; i < top.v.n; i++) {
        mp_value_t key;
        if (mp_read(&r, &key) != 0)
            goto malformed;
        if (key.type != MP_STR) {
            if (s_finish(&r, &key) != 0)
                goto malformed;
            if (!bad)
                s_fail(err, EVENT_E_WRONG_TYPE, "event keys must be strings, not %s",
                       s_type_name(key.type));
            bad = 1;
        }
        if (bad) {
            if (s_walk(&r, 1) != 0)
                goto malformed;
            continue;
        }
        s_field_t f = s_lookup(key.v.s.p, key.v.s.len, origin);
        if (f == S_F_UNKNOWN || (seen & (1u << f))) {
            char quoted[EVENT_QUOTE_MAX * 4 + 4];
            event_quote(quoted, sizeof quoted, key.v.s.p, key.v.s.len);
            if (f == S_F_UNKNOWN)
                s_fail(err, EVENT_E_UNKNOWN_FIELD, "unknown field '%s'", quoted);
            else
                s_fail(err, EVENT_E_DUPLICATE_FIELD, "field '%s' is given more than once", quoted);
            bad = 1;
            if (s_walk(&r, 1) != 0)
                goto malformed;
            continue;
        }
        seen |= 1u << f;
        int nil = mp_reader_left(&r) > 0 && *r.p == 0xc0;
        int rc = s_field(&r, ev, f, origin, err);
        if (rc == S_MALFORMED)
            goto malformed;
        if (rc == S_BAD)
            bad = 1;
        else if (rc == S_OK && !nil)
            present |= 1u << f;
    }
    if (mp_reader_left(&r) != 0) {
        s_fail(err, EVENT_E_MALFORMED, "event has %zu bytes after the map", mp_reader_left(&r));
        return -1;
    }
    if (bad)
        return -1;

    /* Required fields, in contract order (one that is nil was reported as
     * wrong_type above). */
    static const s_field_t required[] = {S_F_TASK_ID, S_F_USER_ID, S_F_STATUS,
                                         S_F_SEQ,     S_F_EPOCH,   S_F_TS};
    size_t nreq = origin == EVENT_FROM_BROKER ? 6 : 3;
    for (size_t i = 0; i < nreq; i++) {
        if (!(present & (1u << required[i]))) {
            s_fail(err, EVENT_E_MISSING_FIELD, "field '%s' is required",
                   s_field_names[required[i]]);
            return -1;
        }
    }
    /* pseq alone is a correlation id, echoed in the answer; with producer
     * the pair is an idempotency key, which needs both. */
    ev->has_pseq = (present & (1u << S_F_PSEQ)) != 0;
    if (ev->has_producer && !ev->has_pseq) {
        s_fail(err, EVENT_E_MISSING_FIELD, "field 'pseq' is required when 'producer' is given");
        return -1;
    }
    return 0;

malformed:
    s_fail(err, EVENT_E_MALFORMED, "event is not one complete, well-formed msgpack item");
    return -1;
}
