/*  fuzz_json.c: the JSON parser (common/json.c) on arbitrary text: what a
 *  browser sends on its WebSocket (the gateway reads at most 512 bytes with
 *  16 tokens, 4 levels) and what a token's header and claims decode to
 *  (256 tokens, 16 levels).
 *
 *  - json_parse() gives the same verdict whatever the limits once they are
 *    large enough, exactly n tokens suffice and n - 1 do not;
 *  - the tokens form a tree: spans inside the text and inside their parent,
 *    counts equal to the children, next links in order, object keys are
 *    strings, the root ends the text (but for blanks);
 *  - every string unescapes to valid UTF-8 that json_string_eq() matches,
 *    json_object_get() finds every key of the root object;
 *  - json_to_msgpack() accepts what json_parse() accepts (but for numbers
 *    past a float64) and writes one well-formed msgpack item.
 */
#include <string.h>

#include "event.h"
#include "fuzz.h"
#include "json.h"
#include "mpread.h"

#define S_DEPTH 64 /* json_to_msgpack's limit */

/*  Checks the subtree at toks[i] (within [lo, hi) of the text); returns
 *  the index after it. */
static uint32_t
s_check_tree(const char *text, const json_tok_t *toks, uint32_t n, uint32_t i, uint32_t lo,
             uint32_t hi)
{
    const json_tok_t *t = &toks[i];
    FUZZ_CHECK(i < n && t->start <= t->end && t->start >= lo && t->end <= hi);
    FUZZ_CHECK(t->next > i && t->next <= n);
    if (t->type != JSON_ARRAY && t->type != JSON_OBJECT) {
        FUZZ_CHECK(t->next == i + 1 && t->count == 0);
        if (t->type == JSON_STRING)
            FUZZ_CHECK(t->start > 0 && text[t->start - 1] == '"' && text[t->end] == '"');
        return t->next;
    }
    FUZZ_CHECK(text[t->start] == (t->type == JSON_OBJECT ? '{' : '['));
    FUZZ_CHECK(text[t->end - 1] == (t->type == JSON_OBJECT ? '}' : ']'));
    uint32_t k = i + 1, children = 0;
    while (k < t->next) {
        if (t->type == JSON_OBJECT && children % 2 == 0)
            FUZZ_CHECK(toks[k].type == JSON_STRING);
        k = s_check_tree(text, toks, n, k, t->start + 1, t->end - 1);
        children++;
    }
    FUZZ_CHECK(k == t->next);
    FUZZ_CHECK(children == (t->type == JSON_OBJECT ? 2 * t->count : t->count));
    return k;
}

/*  copy: room for the text (unescaping never makes a string longer). */
static void
s_check_strings(const char *text, size_t size, const json_tok_t *toks, int n, char *copy)
{
    for (int i = 0; i < n; i++) {
        const json_tok_t *t = &toks[i];
        if (t->type == JSON_NUMBER) {
            int64_t v;
            (void)json_number_i64(text, t, &v);
        }
        if (t->type != JSON_STRING)
            continue;
        int len = json_string_copy(text, t, copy, size + 1);
        FUZZ_CHECK(len >= 0 && (uint32_t)len <= t->end - t->start);
        FUZZ_CHECK(event_utf8_valid(copy, (size_t)len));
        if (!memchr(copy, '\0', (size_t)len))
            FUZZ_CHECK(json_string_eq(text, t, copy));
        /* too small a buffer is refused, never overrun */
        if (len > 0)
            FUZZ_CHECK(json_string_copy(text, t, copy, (size_t)len) == -1);
    }
    if (toks[0].type == JSON_OBJECT) {
        uint32_t k = 1;
        for (uint32_t m = 0; m < toks[0].count; m++) {
            int len = json_string_copy(text, &toks[k], copy, size + 1);
            if (len >= 0 && !memchr(copy, '\0', (size_t)len)) {
                int v = json_object_get(text, toks, 0, copy);
                FUZZ_CHECK(v > 0 && (uint32_t)v <= k + 1); /* the first with that name */
            }
            k = toks[k + 1].next;
        }
    }
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *text = (const char *)data;
    size_t max = size + 1; /* a token takes at least one byte */
    json_tok_t *toks = malloc(max * sizeof *toks);
    FUZZ_CHECK(toks != NULL);

    int n = json_parse(text, size, toks, max, S_DEPTH);
    FUZZ_CHECK(n >= 1 || n == JSON_E_SYNTAX || n == JSON_E_DEPTH);
    if (n >= 1) {
        FUZZ_CHECK(s_check_tree(text, toks, (uint32_t)n, 0, 0, (uint32_t)size) == (uint32_t)n);
        for (size_t p = toks[0].end + (toks[0].type == JSON_STRING); p < size; p++)
            FUZZ_CHECK(strchr(" \t\r\n", text[p]) != NULL);
        char *copy = malloc(size + 1);
        FUZZ_CHECK(copy != NULL);
        s_check_strings(text, size, toks, n, copy);
        free(copy);
        json_tok_t *few = malloc((size_t)n * sizeof *few);
        FUZZ_CHECK(few != NULL);
        FUZZ_CHECK(json_parse(text, size, few, (size_t)n, S_DEPTH) == n);
        FUZZ_CHECK(memcmp(few, toks, (size_t)n * sizeof *few) == 0);
        FUZZ_CHECK(json_parse(text, size, few, (size_t)n - 1, S_DEPTH) == JSON_E_TOKENS);
        free(few);
    }
    /* a larger depth limit changes nothing once the text fits */
    int deeper = json_parse(text, size, toks, max, 2 * S_DEPTH);
    if (n != JSON_E_DEPTH)
        FUZZ_CHECK(deeper == n);

    /* the gateway's reading of a client message, the JWT reader's limits */
    json_tok_t small[256];
    int g = json_parse(text, size < 512 ? size : 512, small, 16, 4);
    if (size <= 512 && n >= 1 && n <= 16 && g != JSON_E_DEPTH)
        FUZZ_CHECK(g == n);
    if (g >= 1 && small[0].type == JSON_OBJECT) {
        int t = json_object_get(text, small, 0, "type");
        if (t > 0)
            (void)json_string_eq(text, &small[t], "ping");
    }
    int j = json_parse(text, size, small, 256, 16);
    if (n >= 1 && n <= 256 && j != JSON_E_DEPTH)
        FUZZ_CHECK(j == n);

    buf_t out;
    buf_init(&out);
    char err[128] = "";
    int rc = json_to_msgpack(text, size, &out, err, sizeof err);
    if (rc == 0) {
        FUZZ_CHECK(n >= 1);
        FUZZ_CHECK(mp_check(out.data, out.len, S_DEPTH));
    }
    else {
        FUZZ_CHECK(out.len == 0 && err[0] != '\0' && fuzz_printable(err));
        FUZZ_CHECK(n < 1 || strstr(err, "out of range") != NULL);
    }
    buf_free(&out);
    free(toks);
    return 0;
}
