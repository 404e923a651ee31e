/*  json.c: strict RFC 8259 parsing into a caller's token array.
 *
 *  The parser is iterative: an open container keeps its parent's index in
 *  its next field until it closes, so nesting costs no stack and no memory
 *  beyond the tokens. Strings are validated once here (escapes, surrogate
 *  pairs, UTF-8 per Unicode table 3-7) so the readers below can unescape
 *  without checking again.
 */
#include "json.h"

#include <limits.h>
#include <math.h>
#include <msgpack.h>
#include <stdlib.h>
#include <string.h>

#define S_NONE UINT32_MAX /* no parent: the root */

/*  Nesting limit of json_to_msgpack (the event codec checks its own). */
#define S_MSGPACK_DEPTH 64

static int
s_is_ws(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static int
s_is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static size_t
s_skip_ws(const char *t, size_t len, size_t pos)
{
    while (pos < len && s_is_ws(t[pos]))
        pos++;
    return pos;
}

static int
s_hex(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/*  The four hex digits at t[pos..pos+4) (the caller checked they exist), or
 *  -1. */
static long
s_hex4(const char *t, size_t pos)
{
    long v = 0;
    for (size_t i = 0; i < 4; i++) {
        int h = s_hex(t[pos + i]);
        if (h < 0)
            return -1;
        v = v << 4 | h;
    }
    return v;
}

/*  Length of the well-formed UTF-8 sequence at u (avail bytes), or 0. The
 *  ranges are Unicode's table 3-7: no overlong forms, no surrogates, nothing
 *  past U+10FFFF. */
static size_t
s_utf8_len(const unsigned char *u, size_t avail)
{
    unsigned char c = u[0], lo = 0x80, hi = 0xBF;
    size_t n;
    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF)
        n = 2;
    else if (c == 0xE0) {
        n = 3;
        lo = 0xA0;
    }
    else if ((c >= 0xE1 && c <= 0xEC) || c == 0xEE || c == 0xEF)
        n = 3;
    else if (c == 0xED) {
        n = 3;
        hi = 0x9F;
    }
    else if (c == 0xF0) {
        n = 4;
        lo = 0x90;
    }
    else if (c >= 0xF1 && c <= 0xF3)
        n = 4;
    else if (c == 0xF4) {
        n = 4;
        hi = 0x8F;
    }
    else
        return 0;
    if (avail < n || u[1] < lo || u[1] > hi)
        return 0;
    for (size_t i = 2; i < n; i++)
        if (u[i] < 0x80 || u[i] > 0xBF)
            return 0;
    return n;
}

/*  Checks a string body starting at pos (just after the opening quote).
 *  Sets *end to the index of the closing quote. 0, or -1. */
static int
s_scan_string(const char *t, size_t len, size_t pos, size_t *end)
{
    while (pos < len) {
        unsigned char c = (unsigned char)t[pos];
        if (c == '"') {
            *end = pos;
            return 0;
        }
        if (c < 0x20)
            return -1;
        if (c >= 0x80) {
            size_t n = s_utf8_len((const unsigned char *)t + pos, len - pos);
            if (n == 0)
                return -1;
            pos += n;
            continue;
        }
        if (c != '\\') {
            pos++;
            continue;
        }
        if (len - pos < 2)
            return -1;
        switch (t[pos + 1]) {
        case '"':
        case '\\':
        case '/':
        case 'b':
        case 'f':
        case 'n':
        case 'r':
        case 't':
            pos += 2;
            continue;
        case 'u':
            break;
        default:
            return -1;
        }
        if (len - pos < 6)
            return -1;
        long cp = s_hex4(t, pos + 2);
        pos += 6;
        if (cp < 0 || (cp >= 0xDC00 && cp <= 0xDFFF))
            return -1; /* bad hex, or a low surrogate with no high one */
        if (cp >= 0xD800 && cp <= 0xDBFF) {
            if (len - pos < 6 || t[pos] != '\\' || t[pos + 1] != 'u')
                return -1;
            long low = s_hex4(t, pos + 2);
            if (low < 0xDC00 || low > 0xDFFF)
                return -1;
            pos += 6;
        }
    }
    return -1;
}

/*  Checks a number at pos (RFC 8259 section 6). Sets *end past it. */
static int
s_scan_number(const char *t, size_t len, size_t pos, size_t *end)
{
    if (pos < len && t[pos] == '-')
        pos++;
    if (pos >= len || !s_is_digit(t[pos]))
        return -1;
    if (t[pos] == '0')
        pos++; /* no leading zeros: "01" stops here and fails later */
    else
        while (pos < len && s_is_digit(t[pos]))
            pos++;
    if (pos < len && t[pos] == '.') {
        pos++;
        if (pos >= len || !s_is_digit(t[pos]))
            return -1;
        while (pos < len && s_is_digit(t[pos]))
            pos++;
    }
    if (pos < len && (t[pos] == 'e' || t[pos] == 'E')) {
        pos++;
        if (pos < len && (t[pos] == '+' || t[pos] == '-'))
            pos++;
        if (pos >= len || !s_is_digit(t[pos]))
            return -1;
        while (pos < len && s_is_digit(t[pos]))
            pos++;
    }
    *end = pos;
    return 0;
}

/*  Scans the scalar at pos into tok. 0, or -1. */
static int
s_scan_scalar(const char *t, size_t len, size_t pos, json_tok_t *tok, size_t *after)
{
    static const struct {
        const char *word;
        size_t len;
        json_type_t type;
    } words[] = {{"null", 4, JSON_NULL}, {"false", 5, JSON_FALSE}, {"true", 4, JSON_TRUE}};
    size_t end;
    if (t[pos] == '"') {
        if (s_scan_string(t, len, pos + 1, &end) != 0)
            return -1;
        tok->type = JSON_STRING;
        tok->start = (uint32_t)(pos + 1);
        tok->end = (uint32_t)end;
        *after = end + 1;
        return 0;
    }
    if (t[pos] == '-' || s_is_digit(t[pos])) {
        if (s_scan_number(t, len, pos, &end) != 0)
            return -1;
        tok->type = JSON_NUMBER;
        tok->start = (uint32_t)pos;
        tok->end = (uint32_t)end;
        *after = end;
        return 0;
    }
    for (size_t i = 0; i < sizeof words / sizeof words[0]; i++) {
        if (len - pos >= words[i].len && memcmp(t + pos, words[i].word, words[i].len) == 0) {
            tok->type = words[i].type;
            tok->start = (uint32_t)pos;
            tok->end = (uint32_t)(pos + words[i].len);
            *after = pos + words[i].len;
            return 0;
        }
    }
    return -1;
}

/*  Closes the innermost open container, whose closing byte is at pos. */
static void
s_close(json_tok_t *toks, uint32_t *parent, size_t ntok, size_t pos)
{
    json_tok_t *c = &toks[*parent];
    *parent = c->next;
    c->next = (uint32_t)ntok;
    c->end = (uint32_t)(pos + 1);
}

int
json_parse(const char *text, size_t len, json_tok_t *toks, size_t max_toks, int max_depth)
{
    enum { S_VALUE, S_KEY, S_AFTER } state = S_VALUE;
    if (!text || len >= UINT32_MAX)
        return JSON_E_SYNTAX;
    if (max_toks > INT_MAX)
        max_toks = INT_MAX;
    size_t n = 0, pos = 0;
    uint32_t parent = S_NONE;
    int depth = 0;
    for (;;) {
        pos = s_skip_ws(text, len, pos);
        if (state == S_AFTER) {
            /* A value just ended: the container goes on, closes, or (at
             * the root) the text must end. */
            if (parent == S_NONE)
                return pos == len ? (int)n : JSON_E_SYNTAX;
            json_tok_t *p = &toks[parent];
            p->count++;
            char close = p->type == JSON_OBJECT ? '}' : ']';
            if (pos < len && text[pos] == ',') {
                pos++;
                state = p->type == JSON_OBJECT ? S_KEY : S_VALUE;
            }
            else if (pos < len && text[pos] == close) {
                s_close(toks, &parent, n, pos++);
                depth--;
            }
            else
                return JSON_E_SYNTAX;
            continue;
        }
        if (pos >= len)
            return JSON_E_SYNTAX;
        if (n >= max_toks)
            return JSON_E_TOKENS;
        json_tok_t *tok = &toks[n];
        tok->count = 0;
        if (state == S_KEY) {
            size_t after;
            if (text[pos] != '"' || s_scan_scalar(text, len, pos, tok, &after) != 0)
                return JSON_E_SYNTAX;
            tok->next = (uint32_t)++n;
            pos = s_skip_ws(text, len, after);
            if (pos >= len || text[pos] != ':')
                return JSON_E_SYNTAX;
            pos++;
            state = S_VALUE;
            continue;
        }
        char c = text[pos];
        if (c == '[' || c == '{') {
            if (depth >= max_depth)
                return JSON_E_DEPTH;
            tok->type = c == '{' ? JSON_OBJECT : JSON_ARRAY;
            tok->start = (uint32_t)pos;
            tok->next = parent; /* the parent link, until it closes */
            parent = (uint32_t)n++;
            depth++;
            pos = s_skip_ws(text, len, pos + 1);
            if (pos < len && text[pos] == (c == '{' ? '}' : ']')) {
                s_close(toks, &parent, n, pos++);
                depth--;
                state = S_AFTER;
            }
            else
                state = c == '{' ? S_KEY : S_VALUE;
            continue;
        }
        size_t after;
        if (s_scan_scalar(text, len, pos, tok, &after) != 0)
            return JSON_E_SYNTAX;
        tok->next = (uint32_t)++n;
        pos = after;
        state = S_AFTER;
    }
}

/*  Encodes a code point (<= U+10FFFF, not a surrogate) as UTF-8. */
static size_t
s_utf8_put(uint32_t cp, unsigned char out[4])
{
    if (cp < 0x80) {
        out[0] = (unsigned char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (unsigned char)(0xC0 | cp >> 6);
        out[1] = (unsigned char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (unsigned char)(0xE0 | cp >> 12);
        out[1] = (unsigned char)(0x80 | (cp >> 6 & 0x3F));
        out[2] = (unsigned char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (unsigned char)(0xF0 | cp >> 18);
    out[1] = (unsigned char)(0x80 | (cp >> 12 & 0x3F));
    out[2] = (unsigned char)(0x80 | (cp >> 6 & 0x3F));
    out[3] = (unsigned char)(0x80 | (cp & 0x3F));
    return 4;
}

/*  Decodes the byte or escape at t[*pos] of a string json_parse validated
 *  into out and moves *pos past it. Returns the bytes written (1..4). */
static size_t
s_unescape_one(const char *t, size_t *pos, unsigned char out[4])
{
    size_t p = *pos;
    if (t[p] != '\\') {
        out[0] = (unsigned char)t[p];
        *pos = p + 1;
        return 1;
    }
    *pos = p + 2;
    switch (t[p + 1]) {
    case 'b':
        out[0] = '\b';
        return 1;
    case 'f':
        out[0] = '\f';
        return 1;
    case 'n':
        out[0] = '\n';
        return 1;
    case 'r':
        out[0] = '\r';
        return 1;
    case 't':
        out[0] = '\t';
        return 1;
    case 'u':
        break;
    default: /* '"', '\\', '/' */
        out[0] = (unsigned char)t[p + 1];
        return 1;
    }
    uint32_t cp = (uint32_t)s_hex4(t, p + 2);
    *pos = p + 6;
    if (cp >= 0xD800 && cp <= 0xDBFF) {
        uint32_t low = (uint32_t)s_hex4(t, p + 8);
        cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
        *pos = p + 12;
    }
    return s_utf8_put(cp, out);
}

int
json_object_get(const char *text, const json_tok_t *toks, int obj, const char *key)
{
    if (obj < 0 || toks[obj].type != JSON_OBJECT)
        return -1;
    uint32_t k = (uint32_t)obj + 1;
    for (uint32_t i = 0; i < toks[obj].count; i++) {
        if (json_string_eq(text, &toks[k], key))
            return (int)k + 1;
        k = toks[k + 1].next;
    }
    return -1;
}

int
json_string_copy(const char *text, const json_tok_t *tok, char *out, size_t outlen)
{
    if (tok->type != JSON_STRING || outlen == 0)
        return -1;
    size_t pos = tok->start, n = 0;
    while (pos < tok->end) {
        unsigned char u[4];
        size_t k = s_unescape_one(text, &pos, u);
        if (n + k >= outlen || n + k > INT_MAX)
            return -1;
        memcpy(out + n, u, k);
        n += k;
    }
    out[n] = '\0';
    return (int)n;
}

int
json_string_eq(const char *text, const json_tok_t *tok, const char *lit)
{
    if (tok->type != JSON_STRING)
        return 0;
    size_t pos = tok->start;
    const unsigned char *l = (const unsigned char *)lit;
    while (pos < tok->end) {
        unsigned char u[4];
        size_t k = s_unescape_one(text, &pos, u);
        for (size_t i = 0; i < k; i++, l++)
            if (*l == '\0' || *l != u[i]) /* a literal holds no NUL */
                return 0;
    }
    return *l == '\0';
}

/*  The digits of a NUMBER token: its integer and fraction digits in order,
 *  and its decimal exponent. */
typedef struct {
    const char *ip, *fp; /* integer and fraction digits */
    size_t ilen, flen;
    long exp; /* saturated at +-S_EXP_MAX */
    int neg;
} s_num_t;

#define S_EXP_MAX 100000L

static void
s_num_split(const char *text, const json_tok_t *tok, s_num_t *num)
{
    const char *p = text + tok->start, *end = text + tok->end;
    memset(num, 0, sizeof *num);
    if (*p == '-') {
        num->neg = 1;
        p++;
    }
    num->ip = p;
    while (p < end && s_is_digit(*p))
        p++;
    num->ilen = (size_t)(p - num->ip);
    num->fp = p;
    if (p < end && *p == '.') {
        num->fp = ++p;
        while (p < end && s_is_digit(*p))
            p++;
        num->flen = (size_t)(p - num->fp);
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        int eneg = 0;
        p++;
        if (*p == '+' || *p == '-')
            eneg = *p++ == '-';
        for (; p < end; p++)
            if (num->exp < S_EXP_MAX)
                num->exp = num->exp * 10 + (*p - '0');
        if (num->exp > S_EXP_MAX)
            num->exp = S_EXP_MAX;
        if (eneg)
            num->exp = -num->exp;
    }
}

int
json_number_i64(const char *text, const json_tok_t *tok, int64_t *out)
{
    if (tok->type != JSON_NUMBER)
        return -1;
    s_num_t num;
    s_num_split(text, tok, &num);
    /* The digits d0 d1 ... with the decimal point after `point` of them;
     * leading zeros dropped so at most 19 digits can remain before it. */
    size_t ndig = num.ilen + num.flen, first = 0;
#define S_DIGIT(i) ((i) < num.ilen ? num.ip[(i)] : num.fp[(i)-num.ilen])
    while (first < ndig && S_DIGIT(first) == '0')
        first++;
    int64_t point = (int64_t)num.ilen + num.exp - (int64_t)first;
    uint64_t limit = num.neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX, mag = 0;
    if (first == ndig || point <= 0) {
        *out = 0; /* zero, or only a fraction: truncated toward zero */
        return 0;
    }
    if (point > 19)
        return -1;
    for (int64_t i = 0; i < point; i++) {
        size_t at = first + (size_t)i;
        unsigned d = at < ndig ? (unsigned)(S_DIGIT(at) - '0') : 0;
        if (mag > (limit - d) / 10)
            return -1;
        mag = mag * 10 + d;
    }
#undef S_DIGIT
    if (num.neg)
        *out = mag == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)mag;
    else
        *out = (int64_t)mag;
    return 0;
}

/*  Packs a NUMBER: integers exactly (int64, or uint64 above INT64_MAX),
 *  everything else as float64. 0, -1 (packer), or -2 (out of range). */
static int
s_pack_number(msgpack_packer *pk, const char *text, const json_tok_t *tok)
{
    const char *p = text + tok->start;
    size_t n = tok->end - tok->start;
    if (!memchr(p, '.', n) && !memchr(p, 'e', n) && !memchr(p, 'E', n)) {
        int neg = *p == '-';
        uint64_t mag = 0;
        int fits = 1;
        for (size_t i = (size_t)neg; i < n && fits; i++) {
            unsigned d = (unsigned)(p[i] - '0');
            if (mag > (UINT64_MAX - d) / 10)
                fits = 0;
            else
                mag = mag * 10 + d;
        }
        if (fits && !neg && mag <= (uint64_t)INT64_MAX)
            return msgpack_pack_int64(pk, (int64_t)mag);
        if (fits && !neg)
            return msgpack_pack_uint64(pk, mag);
        if (fits && mag <= (uint64_t)INT64_MAX + 1)
            return msgpack_pack_int64(pk,
                                      mag == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)mag);
    }
    /* strtod needs a terminated copy; numbers are short except in
     * contrived input. Assumes the C numeric locale. */
    char small[64], *copy = small;
    if (n >= sizeof small && !(copy = malloc(n + 1)))
        return -1;
    memcpy(copy, p, n);
    copy[n] = '\0';
    double d = strtod(copy, NULL);
    if (copy != small)
        free(copy);
    if (isinf(d))
        return -2;
    return msgpack_pack_double(pk, d);
}

/*  Packs a STRING token unescaped. */
static int
s_pack_string(msgpack_packer *pk, const char *text, const json_tok_t *tok)
{
    const char *raw = text + tok->start;
    size_t rawlen = tok->end - tok->start;
    if (!memchr(raw, '\\', rawlen)) {
        if (msgpack_pack_str(pk, rawlen) != 0)
            return -1;
        return msgpack_pack_str_body(pk, raw, rawlen);
    }
    size_t len = 0, pos = tok->start;
    unsigned char u[4], chunk[256];
    while (pos < tok->end)
        len += s_unescape_one(text, &pos, u);
    if (msgpack_pack_str(pk, len) != 0)
        return -1;
    size_t fill = 0;
    pos = tok->start;
    while (pos < tok->end) {
        size_t k = s_unescape_one(text, &pos, u);
        if (fill + k > sizeof chunk) {
            if (msgpack_pack_str_body(pk, chunk, fill) != 0)
                return -1;
            fill = 0;
        }
        memcpy(chunk + fill, u, k);
        fill += k;
    }
    return fill ? msgpack_pack_str_body(pk, chunk, fill) : 0;
}

int
json_to_msgpack(const char *text, size_t len, buf_t *out, char *err, size_t errlen)
{
    /* Every token but the first follows one of , : [ { so this bounds the
     * tokens needed (bytes inside strings only make it generous). */
    size_t max_toks = 1;
    for (size_t i = 0; i < len; i++)
        if (text[i] == ',' || text[i] == ':' || text[i] == '[' || text[i] == '{')
            max_toks++;
    json_tok_t *toks = malloc(max_toks * sizeof *toks);
    if (!toks) {
        snprintf(err, errlen, "out of memory reading JSON");
        return -1;
    }
    int n = json_parse(text, len, toks, max_toks, S_MSGPACK_DEPTH);
    if (n < 0) {
        free(toks);
        if (n == JSON_E_DEPTH)
            snprintf(err, errlen, "JSON nested deeper than %d levels", S_MSGPACK_DEPTH);
        else
            snprintf(err, errlen, "not valid JSON");
        return -1;
    }
    size_t start = out->len;
    msgpack_packer pk;
    msgpack_packer_init(&pk, out, buf_msgpack_write);
    int rc = 0;
    /* Tokens are in document order, each container before its children:
     * exactly msgpack's order, so no recursion is needed. */
    for (int i = 0; i < n && rc == 0; i++) {
        const json_tok_t *t = &toks[i];
        switch (t->type) {
        case JSON_NULL:
            rc = msgpack_pack_nil(&pk);
            break;
        case JSON_FALSE:
            rc = msgpack_pack_false(&pk);
            break;
        case JSON_TRUE:
            rc = msgpack_pack_true(&pk);
            break;
        case JSON_NUMBER:
            rc = s_pack_number(&pk, text, t);
            break;
        case JSON_STRING:
            rc = s_pack_string(&pk, text, t);
            break;
        case JSON_ARRAY:
            rc = msgpack_pack_array(&pk, t->count);
            break;
        case JSON_OBJECT:
            rc = msgpack_pack_map(&pk, t->count);
            break;
        }
    }
    free(toks);
    if (rc != 0 || !buf_ok(out)) {
        if (rc == -2)
            snprintf(err, errlen, "JSON number out of range for a float64");
        else
            snprintf(err, errlen, "out of memory writing msgpack");
        out->len = start; /* nothing half-written is left behind */
        return -1;
    }
    return 0;
}
