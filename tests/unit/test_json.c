/*  test_json.c: the strict parser, its readers and json_to_msgpack. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "check.h"
#include "json.h"

#define NTOKS 64

/*  Parses a NUL-terminated text with room for 64 tokens and depth 32. */
static int
s_parse(const char *text)
{
    json_tok_t toks[NTOKS];
    return json_parse(text, strlen(text), toks, NTOKS, 32);
}

static void
test_accept(void)
{
    static const char *const ok[] = {
        "0",
        "-0",
        "1",
        "-1",
        "0.5",
        "-0.0e-0",
        "1E+2",
        "1e-2",
        "123456789012345678901234567890",
        "true",
        "false",
        "null",
        "\"\"",
        "\"\\\"\\\\\\/\\b\\f\\n\\r\\t\"",
        "\"\\u0000\"",
        "\"\\uD83D\\uDE00\"",
        "\"\\ud83d\\ude00\"",
        "\"\\uFFFF\\uE000\\uD7FF\"",
        "\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\"", /* e acute, euro, emoji */
        "\"\xef\xbf\xbf\xf4\x8f\xbf\xbf\"",         /* U+FFFF, U+10FFFF */
        "\"\x7f\"",
        "[]",
        "{}",
        " [ ] ",
        "\t\r\n{\"a\" : [1, {\"b\":null}] }\n",
        "[[[]]]",
        "{\"\":{}}",
        "[1,\"a\",true,false,null,{},[]]",
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        int n = s_parse(ok[i]);
        if (n < 1)
            fprintf(stderr, "rejected: %s\n", ok[i]);
        CHECK(n >= 1);
    }
}

static void
test_reject(void)
{
    static const char *const bad[] = {
        "",
        " ",
        "[1,]",
        "{\"a\":1,}",
        "[,]",
        "[,1]",
        "{,}",
        "01",
        "-01",
        "00",
        "[01]",
        "1.",
        ".5",
        "-",
        "+1",
        "1e",
        "1e+",
        "1.e5",
        "0x10",
        "NaN",
        "Infinity",
        "-Infinity",
        "[1 2]",
        "{\"a\" 1}",
        "{a:1}",
        "{'a':1}",
        "{1:2}",
        "{\"a\"}",
        "{\"a\":}",
        "{\"a\":1:2}",
        "{\"a\",1}",
        "[\"a\":1]",
        "[}",
        "{]",
        "[1]]",
        "[[1]",
        "\"abc",
        "\"\\x\"",
        "\"\\'\"",
        "\"\\u12\"",
        "\"\\u12G4\"",
        "\"\\uD800\"",        /* lone high surrogate */
        "\"\\uDC00\"",        /* lone low surrogate */
        "\"\\uD800\\u0041\"", /* high then not low */
        "\"\\uD800x\"",       /* high then a raw byte */
        "\"\\uDBFF\\uDBFF\"", /* high then high */
        "\"\\uDE00\\uD83D\"", /* pair reversed */
        "\"\\uD83D\\",        /* cut inside */
        "\"a\x01"
        "b\"", /* raw control characters */
        "\"\t\"",
        "\"\n\"",
        "\"\x1f\"",
        "\"\xc0\xaf\"",         /* overlong '/' */
        "\"\xc1\xbf\"",         /* overlong */
        "\"\xe0\x80\xaf\"",     /* overlong, 3 bytes */
        "\"\xf0\x80\x80\xaf\"", /* overlong, 4 bytes */
        "\"\xed\xa0\x80\"",     /* an encoded surrogate */
        "\"\xf4\x90\x80\x80\"", /* above U+10FFFF */
        "\"\xf5\x80\x80\x80\"",
        "\"\xff\"",
        "\"\x80\"", /* lone continuation byte */
        "\"\xc3\"", /* cut sequences */
        "\"\xe2\x82\"",
        "\"\xf0\x9f\x98\"",
        "\"\xc3\x28\"",   /* lead byte then ASCII */
        "\xef\xbb\xbf{}", /* byte order mark */
        "{} x",           /* trailing garbage */
        "{}{}",
        "1 2",
        "truex",
        "nul",
        "True",
        "\"a\" \"b\"",
        "[1,2",
        "{\"a\":1",
        "/* c */ 1",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int n = s_parse(bad[i]);
        if (n != JSON_E_SYNTAX)
            fprintf(stderr, "not rejected as syntax (%d): %s\n", n, bad[i]);
        CHECK(n == JSON_E_SYNTAX);
    }
    /* Bytes counted by length, not by NUL: a NUL anywhere is an error. */
    json_tok_t toks[8];
    CHECK(json_parse("[1,\0 2]", 7, toks, 8, 8) == JSON_E_SYNTAX);
    CHECK(json_parse("\"a\0b\"", 5, toks, 8, 8) == JSON_E_SYNTAX);
    CHECK(json_parse("1\0", 2, toks, 8, 8) == JSON_E_SYNTAX);
    /* ...and nothing past len is read. */
    CHECK(json_parse("[1]]", 3, toks, 8, 8) == 2);
    CHECK(json_parse("12", 1, toks, 8, 8) == 1);
    CHECK(json_parse(NULL, 0, toks, 8, 8) == JSON_E_SYNTAX);
}

static void
test_tokens(void)
{
    const char *t = "{\"a\":[1,2,{\"b\":true}],\"c\":\"x\"}";
    json_tok_t k[NTOKS];
    int n = json_parse(t, strlen(t), k, NTOKS, 8);
    CHECK(n == 10);
    CHECK(k[0].type == JSON_OBJECT && k[0].count == 2 && k[0].next == 10);
    CHECK(k[0].start == 0 && k[0].end == strlen(t));
    CHECK(k[1].type == JSON_STRING && k[1].start == 2 && k[1].end == 3 && k[1].next == 2);
    CHECK(k[2].type == JSON_ARRAY && k[2].count == 3 && k[2].next == 8);
    CHECK(k[2].start == 5 && t[k[2].end - 1] == ']');
    CHECK(k[3].type == JSON_NUMBER && k[3].start == 6 && k[3].end == 7);
    CHECK(k[5].type == JSON_OBJECT && k[5].count == 1 && k[5].next == 8);
    CHECK(k[7].type == JSON_TRUE && k[7].end - k[7].start == 4);
    CHECK(k[8].type == JSON_STRING && k[9].type == JSON_STRING && k[9].next == 10);

    /* Token exhaustion, exactly at the limit and one past it. */
    CHECK(json_parse("[1,2,3]", 7, k, 4, 8) == 4);
    CHECK(json_parse("[1,2,3]", 7, k, 3, 8) == JSON_E_TOKENS);
    CHECK(json_parse("{\"a\":1}", 7, k, 3, 8) == 3);
    CHECK(json_parse("{\"a\":1}", 7, k, 2, 8) == JSON_E_TOKENS);
    CHECK(json_parse("{\"a\":1}", 7, k, 1, 8) == JSON_E_TOKENS);
    CHECK(json_parse("1", 1, k, 0, 8) == JSON_E_TOKENS);
    /* Empty containers and scalars at the root. */
    CHECK(json_parse("[]", 2, k, 1, 8) == 1 && k[0].count == 0 && k[0].next == 1);
    CHECK(json_parse(" \"s\" ", 5, k, 1, 0) == 1 && k[0].start == 2 && k[0].end == 3);
}

static void
test_depth(void)
{
    json_tok_t k[NTOKS];
    CHECK(json_parse("[[[]]]", 6, k, NTOKS, 3) == 3);
    CHECK(json_parse("[[[[]]]]", 8, k, NTOKS, 3) == JSON_E_DEPTH);
    CHECK(json_parse("{\"a\":{\"a\":{}}}", 14, k, NTOKS, 3) == 5);
    CHECK(json_parse("{\"a\":{\"a\":{}}}", 14, k, NTOKS, 2) == JSON_E_DEPTH);
    CHECK(json_parse("[]", 2, k, NTOKS, 0) == JSON_E_DEPTH);
    CHECK(json_parse("1", 1, k, NTOKS, 0) == 1);
    /* Siblings do not add up: depth is nesting, not count. */
    CHECK(json_parse("[[],[],[[]]]", 12, k, NTOKS, 3) == 5);

    /* Very deep nesting costs no stack (run under ASan): 200,000 levels. */
    size_t levels = 200000, len = 2 * levels;
    char *deep = malloc(len);
    json_tok_t *many = malloc(levels * sizeof *many);
    CHECK(deep && many);
    if (deep && many) {
        memset(deep, '[', levels);
        memset(deep + levels, ']', levels);
        CHECK(json_parse(deep, len, many, levels, (int)levels) == (int)levels);
        CHECK(many[0].next == levels && many[levels - 1].next == levels);
        CHECK(many[0].end == len && many[1].count == 1 && many[levels - 1].count == 0);
        CHECK(json_parse(deep, len, many, levels, 32) == JSON_E_DEPTH);
        CHECK(json_parse(deep, len, many, levels - 1, (int)levels) == JSON_E_TOKENS);
        CHECK(json_parse(deep, len - 1, many, levels, (int)levels) == JSON_E_SYNTAX);
    }
    free(deep);
    free(many);
}

static void
test_readers(void)
{
    const char *t = "{\"x\":[1,[2]],\"y\":{\"z\":1},\"a\\u0062\":\"v\",\"w\":3,\"w\":4,"
                    "\"s\":\"a\\nb\\u00e9\\uD83D\\uDE00\\\"\",\"n\":\"a\\u0000b\"}";
    json_tok_t k[NTOKS];
    int n = json_parse(t, strlen(t), k, NTOKS, 8);
    CHECK(n > 0);
    int w = json_object_get(t, k, 0, "w");
    CHECK(w > 0 && k[w].type == JSON_NUMBER && t[k[w].start] == '3'); /* the first */
    int ab = json_object_get(t, k, 0, "ab");
    CHECK(ab > 0 && json_string_eq(t, &k[ab], "v"));
    int y = json_object_get(t, k, 0, "y");
    CHECK(y > 0 && k[y].type == JSON_OBJECT);
    CHECK(json_object_get(t, k, y, "z") == y + 2);
    CHECK(json_object_get(t, k, 0, "z") == -1);
    CHECK(json_object_get(t, k, 0, "") == -1);
    CHECK(json_object_get(t, k, 0, "a") == -1);
    CHECK(json_object_get(t, k, 0, "abc") == -1);
    CHECK(json_object_get(t, k, 1, "x") == -1); /* not an object */
    CHECK(json_object_get(t, k, -1, "x") == -1);

    int s = json_object_get(t, k, 0, "s");
    char out[32];
    const char want[] = "a\nb\xc3\xa9\xf0\x9f\x98\x80\"";
    int len = json_string_copy(t, &k[s], out, sizeof out);
    CHECK(len == (int)strlen(want));
    CHECK_STR(out, want);
    CHECK(json_string_copy(t, &k[s], out, strlen(want) + 1) == (int)strlen(want));
    CHECK(json_string_copy(t, &k[s], out, strlen(want)) == -1);
    CHECK(json_string_copy(t, &k[s], out, 0) == -1);
    CHECK(json_string_copy(t, &k[w], out, sizeof out) == -1); /* a number */
    CHECK(json_string_eq(t, &k[s], want));
    CHECK(!json_string_eq(t, &k[s], "a\nb"));
    CHECK(!json_string_eq(t, &k[s], "a\nb\xc3\xa9\xf0\x9f\x98\x80\"x"));
    CHECK(!json_string_eq(t, &k[w], "3"));

    int nul = json_object_get(t, k, 0, "n");
    CHECK(json_string_copy(t, &k[nul], out, sizeof out) == 3);
    CHECK(memcmp(out, "a\0b", 4) == 0);
    CHECK(!json_string_eq(t, &k[nul], "a")); /* NUL is data, not an end */
    CHECK(!json_string_eq(t, &k[nul], "ab"));
}

static int
s_i64(const char *text, int64_t *out)
{
    json_tok_t k[2];
    if (json_parse(text, strlen(text), k, 2, 1) != 1)
        return -2;
    return json_number_i64(text, &k[0], out);
}

static void
test_number_i64(void)
{
    static const struct {
        const char *text;
        int64_t want;
    } ok[] = {
        {"0", 0},
        {"-0", 0},
        {"123", 123},
        {"-42", -42},
        {"9223372036854775807", INT64_MAX},
        {"-9223372036854775808", INT64_MIN},
        {"1.9", 1},
        {"-1.9", -1},
        {"0.999", 0},
        {"1e3", 1000},
        {"1.5e3", 1500},
        {"1E-1", 0},
        {"12345e-2", 123},
        {"0.00012e4", 1},
        {"1e18", 1000000000000000000},
        {"9.223372036854775807e18", INT64_MAX},
        {"0.000000000000000000000000000001e30", 1},
        {"1700000000.5", 1700000000},
        {"0e999999999999", 0},
        {"1e-999999999999", 0},
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        int64_t v = 7;
        int rc = s_i64(ok[i].text, &v);
        if (rc != 0 || v != ok[i].want)
            fprintf(stderr, "json_number_i64(%s) = %d, %lld\n", ok[i].text, rc, (long long)v);
        CHECK(rc == 0 && v == ok[i].want);
    }
    static const char *const bad[] = {
        "9223372036854775808",  "-9223372036854775809", "1e19",
        "18446744073709551616", "1e999999999999",       "92233720368547758080e-1"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int64_t v;
        CHECK(s_i64(bad[i], &v) == -1);
    }
    int64_t v;
    CHECK(s_i64("\"1\"", &v) == -1);
    CHECK(s_i64("true", &v) == -1);
}

/*  Converts text and compares the msgpack bytes. */
static int
s_mp(const char *text, const char *want, size_t wantlen)
{
    buf_t b;
    char err[128] = "";
    buf_init(&b);
    int rc = json_to_msgpack(text, strlen(text), &b, err, sizeof err);
    int same = rc == 0 && b.len == wantlen && memcmp(b.data, want, wantlen) == 0;
    if (!same) {
        fprintf(stderr, "json_to_msgpack(%.60s): rc %d (%s), %zu bytes:", text, rc, err, b.len);
        for (size_t i = 0; i < b.len && i < 24; i++)
            fprintf(stderr, " %02x", (unsigned char)b.data[i]);
        fputc('\n', stderr);
    }
    buf_free(&b);
    return same;
}

#define MP(text, bytes) CHECK(s_mp(text, bytes, sizeof bytes - 1))

static void
test_msgpack(void)
{
    MP("0", "\x00");
    MP("-0", "\x00");
    MP("127", "\x7f");
    MP("128", "\xcc\x80");
    MP("-1", "\xff");
    MP("-32", "\xe0");
    MP("-33", "\xd0\xdf");
    MP("65536", "\xce\x00\x01\x00\x00");
    MP("4294967296", "\xcf\x00\x00\x00\x01\x00\x00\x00\x00");
    MP("9007199254740993", "\xcf\x00\x20\x00\x00\x00\x00\x00\x01"); /* 2^53 + 1: exact */
    MP("9223372036854775807", "\xcf\x7f\xff\xff\xff\xff\xff\xff\xff");
    MP("9223372036854775808", "\xcf\x80\x00\x00\x00\x00\x00\x00\x00");
    MP("18446744073709551615", "\xcf\xff\xff\xff\xff\xff\xff\xff\xff");
    MP("-2147483649", "\xd3\xff\xff\xff\xff\x7f\xff\xff\xff");
    MP("-9223372036854775808", "\xd3\x80\x00\x00\x00\x00\x00\x00\x00");
    /* Past the integer ranges, or with a fraction or exponent: float64. */
    MP("18446744073709551616", "\xcb\x43\xf0\x00\x00\x00\x00\x00\x00");
    MP("-9223372036854775809", "\xcb\xc3\xe0\x00\x00\x00\x00\x00\x00");
    MP("1.0", "\xcb\x3f\xf0\x00\x00\x00\x00\x00\x00");
    MP("1.5", "\xcb\x3f\xf8\x00\x00\x00\x00\x00\x00");
    MP("1e2", "\xcb\x40\x59\x00\x00\x00\x00\x00\x00");
    MP("-0.0", "\xcb\x80\x00\x00\x00\x00\x00\x00\x00");
    MP("0.1000000000000000000000000000000000000000000000000000000000000000000001",
       "\xcb\x3f\xb9\x99\x99\x99\x99\x99\x9a");
    MP("null", "\xc0");
    MP("false", "\xc2");
    MP("true", "\xc3");
    MP("\"\"", "\xa0");
    MP("\"a\\u00e9\\n\"", "\xa4"
                          "a\xc3\xa9\n");
    MP("\"\\uD83D\\uDE00\"", "\xa4\xf0\x9f\x98\x80");
    MP("[]", "\x90");
    MP("{}", "\x80");
    MP("{\"a\":[1,{\"b\":null}],\"c\":true}", "\x82\xa1"
                                              "a\x92\x01\x81\xa1"
                                              "b\xc0\xa1"
                                              "c\xc3");
    MP(" [ 18446744073709551615 , -9223372036854775808 ] ",
       "\x92\xcf\xff\xff\xff\xff\xff\xff\xff\xff\xd3\x80\x00\x00\x00\x00\x00\x00\x00");

    /* A long escaped string: the length first, then the body in pieces. */
    buf_t text, want;
    buf_init(&text);
    buf_init(&want);
    buf_append_char(&text, '"');
    buf_append(&want, "\xda\x02\x58", 3); /* str16, 600 bytes */
    for (int i = 0; i < 300; i++) {
        buf_append_str(&text, "\\u00e9");
        buf_append(&want, "\xc3\xa9", 2);
    }
    buf_append_str(&text, "\"");
    buf_append_char(&text, '\0');
    CHECK(buf_ok(&text) && buf_ok(&want));
    CHECK(s_mp(text.data, want.data, want.len));
    buf_free(&text);
    buf_free(&want);

    /* Appends after what is there; on error leaves it as it was. */
    buf_t b;
    char err[128] = "";
    buf_init(&b);
    buf_append(&b, "XY", 2);
    CHECK(json_to_msgpack("[1]", 3, &b, err, sizeof err) == 0);
    CHECK(b.len == 4 && memcmp(b.data, "XY\x91\x01", 4) == 0);
    CHECK(json_to_msgpack("[1,]", 4, &b, err, sizeof err) == -1);
    CHECK_STR(err, "not valid JSON");
    CHECK(b.len == 4);
    CHECK(json_to_msgpack("[1e400]", 7, &b, err, sizeof err) == -1);
    CHECK(strstr(err, "out of range") != NULL);
    CHECK(b.len == 4);
    CHECK(json_to_msgpack("\"\\uD800\"", 8, &b, err, sizeof err) == -1);
    CHECK(json_to_msgpack("", 0, &b, err, sizeof err) == -1);

    /* 64 levels convert, 65 do not. */
    char deep[140];
    memset(deep, '[', 65);
    memset(deep + 65, ']', 65);
    CHECK(json_to_msgpack(deep + 1, 128, &b, err, sizeof err) == 0);
    CHECK(b.len == 4 + 64);
    CHECK(json_to_msgpack(deep, 130, &b, err, sizeof err) == -1);
    CHECK(strstr(err, "deeper") != NULL);
    CHECK(b.len == 4 + 64);
    buf_free(&b);
}

int
main(void)
{
    test_accept();
    test_reject();
    test_tokens();
    test_depth();
    test_readers();
    test_number_i64();
    test_msgpack();
    return check_report();
}
