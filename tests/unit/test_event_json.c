/*  test_event_json.c: the browser frame of an event, and a mutation loop
 *  that checks every accepted event renders to strict JSON. */
#include "check.h"
#include "event.h"
#include "mbuild.h"

#include <float.h>
#include <math.h>
#include <msgpack.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* ---- a strict RFC 8259 checker, independent of the code under test ---- */

typedef struct {
    const char *p, *end;
    int depth;
} jc_t;

static void
jc_ws(jc_t *j)
{
    while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r'))
        j->p++;
}

static int
jc_hex4(jc_t *j, unsigned *out)
{
    if (j->end - j->p < 4)
        return 0;
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        char c = *j->p++;
        v <<= 4;
        if (c >= '0' && c <= '9')
            v |= (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f')
            v |= (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            v |= (unsigned)(c - 'A' + 10);
        else
            return 0;
    }
    *out = v;
    return 1;
}

/*  One UTF-8 sequence (first byte >= 0x80), decoded and range-checked. */
static int
jc_utf8(jc_t *j)
{
    const unsigned char *s = (const unsigned char *)j->p;
    size_t left = (size_t)(j->end - j->p);
    unsigned cp, n;
    if (s[0] >= 0xc0 && s[0] < 0xe0) {
        n = 2;
        cp = s[0] & 0x1f;
    }
    else if (s[0] >= 0xe0 && s[0] < 0xf0) {
        n = 3;
        cp = s[0] & 0x0f;
    }
    else if (s[0] >= 0xf0 && s[0] < 0xf8) {
        n = 4;
        cp = s[0] & 0x07;
    }
    else
        return 0;
    if (left < n)
        return 0;
    for (unsigned i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = cp << 6 | (s[i] & 0x3f);
    }
    static const unsigned min[] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < min[n] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    j->p += n;
    return 1;
}

static int
jc_string(jc_t *j)
{
    if (j->p >= j->end || *j->p != '"')
        return 0;
    j->p++;
    while (j->p < j->end) {
        unsigned char c = (unsigned char)*j->p;
        if (c == '"') {
            j->p++;
            return 1;
        }
        if (c < 0x20)
            return 0;
        if (c >= 0x80) {
            if (!jc_utf8(j))
                return 0;
            continue;
        }
        j->p++;
        if (c != '\\')
            continue;
        if (j->p >= j->end)
            return 0;
        c = (unsigned char)*j->p++;
        if (c == 'u') {
            unsigned u, lo;
            if (!jc_hex4(j, &u))
                return 0;
            if (u >= 0xdc00 && u <= 0xdfff)
                return 0; /* lone low surrogate */
            if (u >= 0xd800 && u <= 0xdbff) {
                if (j->end - j->p < 6 || j->p[0] != '\\' || j->p[1] != 'u')
                    return 0;
                j->p += 2;
                if (!jc_hex4(j, &lo) || lo < 0xdc00 || lo > 0xdfff)
                    return 0;
            }
        }
        else if (!strchr("\"\\/bfnrt", c) || c == 0)
            return 0;
    }
    return 0;
}

static int
jc_digits(jc_t *j)
{
    const char *s = j->p;
    while (j->p < j->end && *j->p >= '0' && *j->p <= '9')
        j->p++;
    return j->p > s;
}

static int
jc_number(jc_t *j)
{
    if (j->p < j->end && *j->p == '-')
        j->p++;
    if (j->p < j->end && *j->p == '0')
        j->p++;
    else if (!(j->p < j->end && *j->p >= '1' && *j->p <= '9') || !jc_digits(j))
        return 0;
    if (j->p < j->end && *j->p == '.') {
        j->p++;
        if (!jc_digits(j))
            return 0;
    }
    if (j->p < j->end && (*j->p == 'e' || *j->p == 'E')) {
        j->p++;
        if (j->p < j->end && (*j->p == '+' || *j->p == '-'))
            j->p++;
        if (!jc_digits(j))
            return 0;
    }
    return 1;
}

static int
jc_lit(jc_t *j, const char *lit)
{
    size_t n = strlen(lit);
    if ((size_t)(j->end - j->p) < n || memcmp(j->p, lit, n) != 0)
        return 0;
    j->p += n;
    return 1;
}

static int
jc_value(jc_t *j)
{
    jc_ws(j);
    if (j->p >= j->end)
        return 0;
    char c = *j->p;
    if (c == '"')
        return jc_string(j);
    if (c == 't')
        return jc_lit(j, "true");
    if (c == 'f')
        return jc_lit(j, "false");
    if (c == 'n')
        return jc_lit(j, "null");
    if (c == '-' || (c >= '0' && c <= '9'))
        return jc_number(j);
    if (c != '[' && c != '{')
        return 0;
    if (++j->depth > 200)
        return 0;
    char close = c == '[' ? ']' : '}';
    j->p++;
    jc_ws(j);
    if (j->p < j->end && *j->p == close) {
        j->p++;
        j->depth--;
        return 1;
    }
    for (;;) {
        if (close == '}') {
            jc_ws(j);
            if (!jc_string(j))
                return 0;
            jc_ws(j);
            if (j->p >= j->end || *j->p++ != ':')
                return 0;
        }
        if (!jc_value(j))
            return 0;
        jc_ws(j);
        if (j->p >= j->end)
            return 0;
        if (*j->p == ',') {
            j->p++;
            continue;
        }
        if (*j->p++ != close)
            return 0;
        j->depth--;
        return 1;
    }
}

/*  1 if the bytes are exactly one strict JSON text. */
static int
json_valid(const char *s, size_t len)
{
    jc_t j = {s, s + len, 0};
    if (!jc_value(&j))
        return 0;
    jc_ws(&j);
    return j.p == j.end;
}

static void
test_checker(void)
{
    static const char *const good[] = {"0",
                                       "-0",
                                       "1.5e+3",
                                       "[]",
                                       "{}",
                                       "\"\"",
                                       "\"\\u00e9\\ud83d\\ude00\"",
                                       "{\"a\":[1,{}]}",
                                       " true ",
                                       "\"\xc3\xa9\"",
                                       "-1.0E-2",
                                       "null"};
    static const char *const bad[] = {"01",
                                      "1.",
                                      ".5",
                                      "+1",
                                      "[1,]",
                                      "{\"a\":1,}",
                                      "{a:1}",
                                      "\"\x01\"",
                                      "\"\\x\"",
                                      "\"\\ud800\"",
                                      "\"\xc0\xaf\"",
                                      "\"\xed\xa0\x80\"",
                                      "nul",
                                      "1 2",
                                      "",
                                      "[",
                                      "NaN",
                                      "Infinity",
                                      "\"abc",
                                      "{\"a\"}",
                                      "1e",
                                      "-"};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
        CHECK(json_valid(good[i], strlen(good[i])));
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        CHECK(!json_valid(bad[i], strlen(bad[i])));
}

/* ---- building events ---- */

/*  A worker event whose data (if fill is not NULL) fill packs. */
static void
mb_event(mb_t *m, void (*fill)(msgpack_packer *, const void *), const void *arg)
{
    msgpack_sbuffer_clear(&m->sb);
    msgpack_pack_map(&m->pk, fill ? 4 : 3);
    mb_str(m, "task_id");
    mb_str(m, "t-1");
    mb_str(m, "user_id");
    mb_str(m, "42");
    mb_str(m, "status");
    mb_str(m, "running");
    if (fill) {
        mb_str(m, "data");
        fill(&m->pk, arg);
    }
}

/*  Decodes m as a worker event and renders it; returns the JSON (static
 *  storage) or "(rejected)". */
static const char *
render(const mb_t *m)
{
    static char text[200000];
    event_t ev;
    event_error_t err;
    if (event_decode(&ev, m->sb.data, m->sb.size, EVENT_FROM_WORKER, &err) != 0) {
        fprintf(stderr, "rejected: %s: %s\n", err.code, err.detail);
        return "(rejected)";
    }
    buf_t out;
    buf_init(&out);
    int rc = event_render_json(&ev, &out);
    CHECK(rc == 0);
    CHECK(json_valid(out.data, out.len));
    size_t n = out.len < sizeof text - 1 ? out.len : sizeof text - 1;
    memcpy(text, out.data, n);
    text[n] = '\0';
    buf_free(&out);
    return text;
}

#define FRAME_HEAD                                                                                 \
    "{\"type\":\"task\",\"seq\":0,\"task_id\":\"t-1\",\"status\":\"running\",\"data\":"
#define FRAME(data)                                                                                \
    "{\"type\":\"task\",\"seq\":0,\"task_id\":\"t-1\",\"status\":\"running\",\"data\":" data "}"

static void
f_u64(msgpack_packer *pk, const void *arg)
{
    msgpack_pack_uint64(pk, *(const uint64_t *)arg);
}

static void
f_i64(msgpack_packer *pk, const void *arg)
{
    msgpack_pack_int64(pk, *(const int64_t *)arg);
}

static void
f_f64(msgpack_packer *pk, const void *arg)
{
    msgpack_pack_double(pk, *(const double *)arg);
}

static void
f_f32(msgpack_packer *pk, const void *arg)
{
    msgpack_pack_float(pk, *(const float *)arg);
}

static void
f_bin(msgpack_packer *pk, const void *arg)
{
    const char *s = arg;
    msgpack_pack_bin_with_body(pk, s, strlen(s));
}

static void
f_str(msgpack_packer *pk, const void *arg)
{
    const char *s = arg;
    msgpack_pack_str_with_body(pk, s, strlen(s));
}

/*  A small language for nested values: [ ] { } arrays and maps with a count
 *  digit after the bracket, i<num> integer, s<text>; string, n nil, t, f. */
static const char *
f_tree_one(msgpack_packer *pk, const char *p)
{
    char c = *p++;
    if (c == '[' || c == '{') {
        int n = *p++ - '0';
        if (c == '[')
            msgpack_pack_array(pk, (size_t)n);
        else
            msgpack_pack_map(pk, (size_t)n);
        for (int i = 0; i < (c == '[' ? n : 2 * n); i++)
            p = f_tree_one(pk, p);
        return p;
    }
    if (c == 'i') {
        char *end;
        long long v = strtoll(p, &end, 10);
        msgpack_pack_int64(pk, v);
        return end;
    }
    if (c == 's') {
        const char *semi = strchr(p, ';');
        msgpack_pack_str_with_body(pk, p, (size_t)(semi - p));
        return semi + 1;
    }
    if (c == 'n')
        msgpack_pack_nil(pk);
    else if (c == 't')
        msgpack_pack_true(pk);
    else if (c == 'f')
        msgpack_pack_false(pk);
    return p;
}

static void
f_tree(msgpack_packer *pk, const void *arg)
{
    f_tree_one(pk, arg);
}

static void
test_numbers(void)
{
    mb_t m;
    mb_init(&m);
    uint64_t u;
    int64_t i;
    u = UINT64_MAX;
    mb_event(&m, f_u64, &u);
    CHECK_STR(render(&m), FRAME("18446744073709551615"));
    u = 0;
    mb_event(&m, f_u64, &u);
    CHECK_STR(render(&m), FRAME("0"));
    u = 4294967296ull;
    mb_event(&m, f_u64, &u);
    CHECK_STR(render(&m), FRAME("4294967296"));
    i = INT64_MIN;
    mb_event(&m, f_i64, &i);
    CHECK_STR(render(&m), FRAME("-9223372036854775808"));
    i = INT64_MAX;
    mb_event(&m, f_i64, &i);
    CHECK_STR(render(&m), FRAME("9223372036854775807"));
    i = -1;
    mb_event(&m, f_i64, &i);
    CHECK_STR(render(&m), FRAME("-1"));
    i = -33;
    mb_event(&m, f_i64, &i);
    CHECK_STR(render(&m), FRAME("-33"));

    static const struct {
        double d;
        const char *want;
    } dbl[] = {
        {1.0, "1.0"},
        {0.1, "0.1"},
        {1e300, "1e+300"},
        {-0.0, "-0.0"},
        {0.0, "0.0"},
        {100.0, "100.0"},
        {-2.5, "-2.5"},
        {0.1 + 0.2, "0.30000000000000004"},
        {1e21, "1e+21"},
        {123456789012345.0, "123456789012345.0"},
        {1.5e-7, "1.5e-07"},
        {9007199254740993.0, "9007199254740992.0"}, /* 2^53 + 1 is not a double */
        {DBL_MAX, "1.7976931348623157e+308"},
        {1.1, "1.1"},
        {2.0 / 3.0, "0.6666666666666666"},
    };
    for (size_t k = 0; k < sizeof dbl / sizeof dbl[0]; k++) {
        mb_event(&m, f_f64, &dbl[k].d);
        char want[200];
        snprintf(want, sizeof want, FRAME("%s"), dbl[k].want);
        CHECK_STR(render(&m), want);
    }
    /* Denormals read back exactly too. */
    double tiny = 5e-324;
    mb_event(&m, f_f64, &tiny);
    const char *got = render(&m);
    const char *num = strstr(got, "\"data\":") + 7;
    CHECK(strtod(num, NULL) == tiny && strchr(num, 'e'));

    static const struct {
        float f;
        const char *want;
    } flt[] = {
        {1.1f, "1.1"},
        {1.0f, "1.0"},
        {0.1f, "0.1"},
        {-0.5f, "-0.5"},
        {16777216.0f, "16777216.0"},
        {3.4028235e38f, "3.4028235e+38"},
        {1e-45f, "1.4013e-45"},
        {0.3f, "0.3"},
        {100.0f, "100.0"},
        {1.17549435e-38f, "1.1754944e-38"},
    };
    for (size_t k = 0; k < sizeof flt / sizeof flt[0]; k++) {
        mb_event(&m, f_f32, &flt[k].f);
        char want[200];
        snprintf(want, sizeof want, FRAME("%s"), flt[k].want);
        CHECK_STR(render(&m), want);
    }
    /* The same value sent as float 64 keeps all its digits. */
    double wide = (double)1.1f;
    mb_event(&m, f_f64, &wide);
    CHECK_STR(render(&m), FRAME("1.100000023841858"));
    msgpack_sbuffer_destroy(&m.sb);
}

static void
test_values(void)
{
    mb_t m;
    mb_init(&m);
    static const struct {
        const char *bin, *want;
    } b64[] = {{"", "\"\""},
               {"f", "\"Zg==\""},
               {"fo", "\"Zm8=\""},
               {"foo", "\"Zm9v\""},
               {"foob", "\"Zm9vYg==\""},
               {"\xff\xfe", "\"//4=\""},
               {"\xfb\xff", "\"+/8=\""}};
    for (size_t k = 0; k < sizeof b64 / sizeof b64[0]; k++) {
        mb_event(&m, f_bin, b64[k].bin);
        char want[200];
        snprintf(want, sizeof want, FRAME("%s"), b64[k].want);
        CHECK_STR(render(&m), want);
    }

    /* Text: escapes, control characters, multi-byte UTF-8 kept as is. */
    mb_event(&m, f_str, "\xc3\xa9\"\\/\n\t\r\b\f\x01\x1f\x7f \xe2\x9c\x93\xf0\x9f\x98\x80");
    CHECK_STR(render(&m), FRAME("\"\xc3\xa9\\\"\\\\/\\n\\t\\r\\b\\f\\u0001\\u001f\x7f "
                                "\xe2\x9c\x93\xf0\x9f\x98\x80\""));
    mb_event(&m, f_str, "");
    CHECK_STR(render(&m), FRAME("\"\""));
    /* data: nil is "absent" (event.h), so the frame has no data */
    mb_event(&m, f_tree, "n");
    CHECK_STR(render(&m),
              "{\"type\":\"task\",\"seq\":0,\"task_id\":\"t-1\",\"status\":\"running\"}");

    static const struct {
        const char *tree, *want;
    } trees[] = {
        {"{0", "{}"},
        {"[0", "[]"},
        {"[1n", "[null]"},
        {"t", "true"},
        {"f", "false"},
        {"[3i1i-2s;", "[1,-2,\"\"]"},
        {"{2sa;[2i1{1sb;[0sc;{0", "{\"a\":[1,{\"b\":[]}],\"c\":{}}"},
        {"{3i1sa;i-2sb;i0[0", "{\"1\":\"a\",\"-2\":\"b\",\"0\":[]}"},
        {"[2[1[1[0{1s\"k\";{0", "[[[[]]],{\"\\\"k\\\"\":{}}]"},
        {"{1i9223372036854775807n", "{\"9223372036854775807\":null}"},
        {"{1i-9223372036854775808t", "{\"-9223372036854775808\":true}"},
        {"[4{0[0{0[0", "[{},[],{},[]]"},
    };
    for (size_t k = 0; k < sizeof trees / sizeof trees[0]; k++) {
        mb_event(&m, f_tree, trees[k].tree);
        char want[300];
        snprintf(want, sizeof want, FRAME("%s"), trees[k].want);
        CHECK_STR(render(&m), want);
    }

    /* A uint64 map key, and every msgpack integer width as a key. */
    msgpack_sbuffer_clear(&m.sb);
    msgpack_pack_map(&m.pk, 4);
    mb_str(&m, "task_id");
    mb_str(&m, "t-1");
    mb_str(&m, "user_id");
    mb_str(&m, "42");
    mb_str(&m, "status");
    mb_str(&m, "running");
    mb_str(&m, "data");
    msgpack_pack_map(&m.pk, 3);
    msgpack_pack_uint64(&m.pk, UINT64_MAX);
    msgpack_pack_fix_int8(&m.pk, 5);
    msgpack_pack_fix_int16(&m.pk, -300);
    msgpack_pack_float(&m.pk, 0.5f);
    msgpack_pack_fix_uint32(&m.pk, 7);
    msgpack_pack_double(&m.pk, 2.0);
    CHECK_STR(render(&m), FRAME("{\"18446744073709551615\":5,\"-300\":0.5,\"7\":2.0}"));

    /* Deepest allowed nesting renders balanced. */
    char deep[200] = "";
    for (int k = 0; k < EVENT_DEPTH_MAX; k++)
        strcat(deep, "[1");
    strcat(deep, "n");
    mb_event(&m, f_tree, deep);
    const char *got = render(&m);
    CHECK(json_valid(got, strlen(got)));
    CHECK(strstr(got, "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[null]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}") !=
          NULL);
    msgpack_sbuffer_destroy(&m.sb);
}

/*  The full frame, rendered from the published form. */
static void
test_frame(void)
{
    mb_t m;
    mb_init(&m);
    msgpack_pack_map(&m.pk, 9);
    mb_str(&m, "task_id");
    mb_str(&m, "t\"1\\ \xc3\xa9");
    mb_str(&m, "user_id");
    mb_str(&m, "u-2");
    mb_str(&m, "status");
    mb_str(&m, "cancelled");
    mb_str(&m, "progress");
    msgpack_pack_float(&m.pk, 1.1f);
    mb_str(&m, "message");
    msgpack_pack_str_with_body(&m.pk, "a\nb\x00", 4);
    mb_str(&m, "data");
    msgpack_pack_map(&m.pk, 1);
    mb_str(&m, "k");
    msgpack_pack_array(&m.pk, 2);
    msgpack_pack_int(&m.pk, 1);
    msgpack_pack_int(&m.pk, 2);
    mb_str(&m, "producer");
    mb_str(&m, "p");
    mb_str(&m, "pseq");
    msgpack_pack_int(&m.pk, 3);
    mb_str(&m, "ts");
    msgpack_pack_uint64(&m.pk, 1700000000000ull);

    event_t ev, pub;
    event_error_t err;
    buf_t packed, out;
    buf_init(&packed);
    buf_init(&out);
    CHECK(event_decode(&ev, m.sb.data, m.sb.size, EVENT_FROM_WORKER, &err) == 0);
    CHECK(event_pack_published(&ev, 5, 17, "ep", 2, &packed) == 0);
    CHECK(event_decode(&pub, packed.data, packed.len, EVENT_FROM_BROKER, &err) == 0);
    buf_append(&out, "x", 1); /* render appends */
    CHECK(event_render_json(&pub, &out) == 0);
    buf_append_char(&out, '\0');
    CHECK_STR(out.data, "x{\"type\":\"task\",\"seq\":17,\"task_id\":\"t\\\"1\\\\ \xc3\xa9\","
                        "\"status\":\"cancelled\",\"progress\":1.1,\"message\":\"a\\nb\\u0000\","
                        "\"data\":{\"k\":[1,2]},\"ts\":1700000000000}");

    /* Absent optional fields are omitted; the published form always has ts. */
    static const struct {
        int kind;
        const char *want;
    } progress[] = {{0, "42"}, {1, "42.5"}, {2, "100.0"}, {3, "0.1"}, {4, "0.30000000000000004"}};
    for (size_t k = 0; k < sizeof progress / sizeof progress[0]; k++) {
        msgpack_sbuffer_clear(&m.sb);
        msgpack_pack_map(&m.pk, 4);
        mb_str(&m, "task_id");
        mb_str(&m, "t");
        mb_str(&m, "user_id");
        mb_str(&m, "u");
        mb_str(&m, "status");
        mb_str(&m, "queued");
        mb_str(&m, "progress");
        switch (progress[k].kind) {
        case 0:
            msgpack_pack_int(&m.pk, 42);
            break;
        case 1:
            msgpack_pack_double(&m.pk, 42.5);
            break;
        case 2:
            msgpack_pack_double(&m.pk, 100.0);
            break;
        case 3:
            msgpack_pack_double(&m.pk, 0.1);
            break;
        default:
            msgpack_pack_double(&m.pk, 0.1 + 0.2);
            break;
        }
        char want[200];
        snprintf(want, sizeof want,
                 "{\"type\":\"task\",\"seq\":0,\"task_id\":\"t\",\"status\":\"queued\","
                 "\"progress\":%s}",
                 progress[k].want);
        CHECK_STR(render(&m), want);
        /* and the same from the published form */
        CHECK(event_decode(&ev, m.sb.data, m.sb.size, EVENT_FROM_WORKER, &err) == 0);
        buf_reset(&packed);
        buf_reset(&out);
        CHECK(event_pack_published(&ev, 9, 1, "e", 1, &packed) == 0);
        CHECK(event_decode(&pub, packed.data, packed.len, EVENT_FROM_BROKER, &err) == 0);
        CHECK(event_render_json(&pub, &out) == 0);
        buf_append_char(&out, '\0');
        snprintf(want, sizeof want,
                 "{\"type\":\"task\",\"seq\":1,\"task_id\":\"t\",\"status\":\"queued\","
                 "\"progress\":%s,\"ts\":9}",
                 progress[k].want);
        CHECK_STR(out.data, want);
    }

    /* Out of memory: -1 and nothing appended. */
    buf_reset(&out);
    buf_append(&out, "keep", 4);
    out.oom = 1;
    CHECK(event_render_json(&pub, &out) == -1);
    CHECK(out.len == 4);

    /* event_json_string on its own: every control character escaped. */
    char all[32];
    for (int k = 0; k < 32; k++)
        all[k] = (char)k;
    buf_reset(&out);
    event_json_string(&out, all, sizeof all);
    CHECK(json_valid(out.data, out.len));
    CHECK(out.len == 2 + 5 * 2 + 27 * 6);
    buf_reset(&out);
    event_json_string(&out, "abc", 3);
    buf_append_char(&out, '\0');
    CHECK_STR(out.data, "\"abc\"");

    buf_free(&packed);
    buf_free(&out);
    msgpack_sbuffer_destroy(&m.sb);
}

/*  The rule for floats, written out plainly: the shortest of %.15g..%.17g
 *  (%.6g..%.9g for a float 32) that reads back, with ".0" if it would
 *  otherwise look like an integer. */
static void
ref_float(char *out, size_t size, double d, int f32)
{
    for (int prec = f32 ? 6 : 15; prec <= (f32 ? 9 : 17); prec++) {
        snprintf(out, size, "%.*g", prec, d);
        if (f32 ? strtof(out, NULL) == (float)d : strtod(out, NULL) == d)
            break;
    }
    if (!strpbrk(out, ".eE"))
        strcat(out, ".0");
}

static uint64_t rnd(uint64_t *s);

/*  Many floats of every shape, against ref_float. */
static void
test_floats_random(void)
{
    enum { PER = 500, ROUNDS = 100 };
    uint64_t s = 7;
    mb_t m;
    mb_init(&m);
    char *want = malloc(PER * 40 + 64);
    char num[48];
    long wrong = 0;
    for (int round = 0; round < ROUNDS; round++) {
        int f32 = round % 2;
        msgpack_sbuffer_clear(&m.sb);
        msgpack_pack_map(&m.pk, 4);
        mb_str(&m, "task_id");
        mb_str(&m, "t-1");
        mb_str(&m, "user_id");
        mb_str(&m, "42");
        mb_str(&m, "status");
        mb_str(&m, "running");
        mb_str(&m, "data");
        msgpack_pack_array(&m.pk, PER);
        strcpy(want, FRAME_HEAD "[");
        for (int k = 0; k < PER; k++) {
            uint64_t r = rnd(&s);
            double d;
            switch (r % 4) {
            case 0: /* any finite bit pattern */
                if (f32) {
                    uint32_t bits = (uint32_t)(r >> 32);
                    float f;
                    memcpy(&f, &bits, sizeof f);
                    d = isfinite(f) ? f : 0.5f;
                }
                else {
                    uint64_t bits = rnd(&s);
                    memcpy(&d, &bits, sizeof d);
                    if (!isfinite(d))
                        d = 0.5;
                }
                break;
            case 1: /* whole numbers of every size */
                d = (double)(int64_t)(rnd(&s) >> (r >> 8) % 64) * ((r >> 16) % 2 ? -1 : 1);
                break;
            case 2: /* short decimals */
                d = (double)(int64_t)(rnd(&s) % 2000001 - 1000000) / 1000.0;
                break;
            default: /* around the whole-number limits: 1e6, 1e15, 2^53 */
                d = ((r >> 8) % 3 == 0   ? 1e6
                     : (r >> 8) % 3 == 1 ? 1e15
                                         : 9007199254740992.0) +
                    (double)((int64_t)((r >> 16) % 5) - 2);
                break;
            }
            if (f32) {
                d = (float)d;
                msgpack_pack_float(&m.pk, (float)d);
            }
            else
                msgpack_pack_double(&m.pk, d);
            ref_float(num, sizeof num, d, f32);
            if (k)
                strcat(want, ",");
            strcat(want, num);
        }
        strcat(want, "]}");
        const char *got = render(&m);
        if (strcmp(got, want) != 0) {
            wrong++;
            for (size_t i = 0; got[i]; i++) {
                if (got[i] != want[i]) {
                    fprintf(stderr, "float mismatch at %zu: got ...%.40s want ...%.40s\n", i,
                            got + (i > 20 ? i - 20 : 0), want + (i > 20 ? i - 20 : 0));
                    break;
                }
            }
        }
    }
    CHECK(wrong == 0);
    free(want);
    msgpack_sbuffer_destroy(&m.sb);
}

/* ---- the mutation loop ---- */

static uint64_t
rnd(uint64_t *s)
{
    /* splitmix64: fixed seed, same sequence on every run */
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/*  Seeds: valid worker events exercising every kind of value. */
static size_t
seed_event(mb_t *m, int which)
{
    msgpack_sbuffer_clear(&m->sb);
    msgpack_packer *pk = &m->pk;
    msgpack_pack_map(pk, which == 0 ? 3 : 9);
    mb_str(m, "task_id");
    mb_str(m, which == 2 ? "t\xc3\xa9-\xe2\x9c\x93" : "task-1");
    mb_str(m, "user_id");
    mb_str(m, "user_9");
    mb_str(m, "status");
    mb_str(m, which == 1 ? "succeeded" : "running");
    if (which == 0)
        return m->sb.size;
    mb_str(m, "progress");
    if (which == 1)
        msgpack_pack_float(pk, 12.5f);
    else
        msgpack_pack_double(pk, 99.99);
    mb_str(m, "message");
    mb_str(m, "hello \"world\"\n\x01\xc3\xa9");
    mb_str(m, "data");
    msgpack_pack_map(pk, 8);
    mb_str(m, "i");
    msgpack_pack_array(pk, 6);
    msgpack_pack_uint64(pk, UINT64_MAX);
    msgpack_pack_int64(pk, INT64_MIN);
    msgpack_pack_int(pk, -1);
    msgpack_pack_int(pk, 300);
    msgpack_pack_fix_uint16(pk, 7);
    msgpack_pack_fix_int32(pk, -70000);
    msgpack_pack_int(pk, 17);
    msgpack_pack_array(pk, 3);
    msgpack_pack_float(pk, 1.1f);
    msgpack_pack_double(pk, 0.1);
    msgpack_pack_double(pk, -1e300);
    mb_str(m, "b");
    msgpack_pack_bin_with_body(pk, "\x00\xff\x10", 3);
    mb_str(m, "n");
    msgpack_pack_map(pk, 2);
    mb_str(m, "deep");
    msgpack_pack_array(pk, 1);
    msgpack_pack_array(pk, 1);
    msgpack_pack_map(pk, 1);
    msgpack_pack_int(pk, -4);
    msgpack_pack_nil(pk);
    mb_str(m, "e");
    msgpack_pack_map(pk, 0);
    mb_str(m, "t");
    msgpack_pack_true(pk);
    mb_str(m, "f");
    msgpack_pack_false(pk);
    mb_str(m, "s");
    mb_str(m, "\xe2\x9c\x93 ok\t");
    mb_str(m, "");
    msgpack_pack_array(pk, 0);
    mb_str(m, "ts");
    msgpack_pack_uint64(pk, 1700000000000ull);
    mb_str(m, "producer");
    mb_str(m, "w-1");
    mb_str(m, "pseq");
    msgpack_pack_uint64(pk, 5);
    return m->sb.size;
}

static void
mutate(uint8_t *buf, size_t *len, size_t cap, uint64_t *s)
{
    static const uint8_t interesting[] = {0x00, 0x7f, 0x80, 0x8f, 0x90, 0x9f, 0xa0, 0xbf, 0xc0,
                                          0xc1, 0xc2, 0xc3, 0xc4, 0xc7, 0xca, 0xcb, 0xcf, 0xd3,
                                          0xd4, 0xd8, 0xd9, 0xdb, 0xdc, 0xdd, 0xde, 0xdf, 0xe0,
                                          0xff, 0xed, 0xf4, 0x20, 0x22, 0x5c};
    int n = 1 + (int)(rnd(s) % 4);
    for (int k = 0; k < n; k++) {
        size_t at = *len ? rnd(s) % *len : 0;
        switch (rnd(s) % 7) {
        case 0: /* random byte */
            if (*len)
                buf[at] = (uint8_t)rnd(s);
            break;
        case 1: /* bit flip */
            if (*len)
                buf[at] ^= (uint8_t)(1u << (rnd(s) % 8));
            break;
        case 2: /* interesting byte */
            if (*len)
                buf[at] = interesting[rnd(s) % sizeof interesting];
            break;
        case 3: /* truncate */
            *len = at;
            break;
        case 4: /* insert */
            if (*len < cap) {
                memmove(buf + at + 1, buf + at, *len - at);
                buf[at] = rnd(s) % 2 ? (uint8_t)rnd(s) : interesting[rnd(s) % sizeof interesting];
                (*len)++;
            }
            break;
        case 5: /* delete */
            if (*len) {
                memmove(buf + at, buf + at + 1, *len - at - 1);
                (*len)--;
            }
            break;
        default: /* small increment: lengths and counts off by one */
            if (*len)
                buf[at] = (uint8_t)(buf[at] + (rnd(s) % 2 ? 1 : 0xff));
            break;
        }
    }
}

static void
test_mutations(void)
{
    enum { SEEDS = 3, CAP = 1024, ITER = 200000 };
    mb_t m;
    mb_init(&m);
    uint8_t seeds[SEEDS][CAP], pubs[SEEDS][CAP];
    size_t seed_len[SEEDS], pub_len[SEEDS];
    buf_t out, packed, out2;
    buf_init(&out);
    buf_init(&packed);
    buf_init(&out2);
    for (int k = 0; k < SEEDS; k++) {
        seed_len[k] = seed_event(&m, k);
        memcpy(seeds[k], m.sb.data, seed_len[k]);
        event_t ev;
        CHECK(event_decode(&ev, seeds[k], seed_len[k], EVENT_FROM_WORKER, NULL) == 0);
        buf_reset(&packed);
        CHECK(event_pack_published(&ev, 1, 1, "epoch-x", 7, &packed) == 0);
        pub_len[k] = packed.len;
        memcpy(pubs[k], packed.data, packed.len);
    }

    uint64_t s = 20240601;
    long accepted = 0, rejected = 0, bad_json = 0, mismatch = 0, bad_detail = 0;
    int codes_seen = 0;
    static const char *const codes[] = {
        EVENT_E_MALFORMED,     EVENT_E_NOT_A_MAP,       EVENT_E_MISSING_FIELD,
        EVENT_E_WRONG_TYPE,    EVENT_E_INVALID_VALUE,   EVENT_E_TOO_LARGE,
        EVENT_E_UNKNOWN_FIELD, EVENT_E_DUPLICATE_FIELD, EVENT_E_INVALID_UTF8};
    uint8_t work[CAP + 8];
    for (int iter = 0; iter < ITER; iter++) {
        int k = (int)(rnd(&s) % SEEDS);
        int broker = rnd(&s) % 4 == 0;
        size_t len = broker ? pub_len[k] : seed_len[k];
        memcpy(work, broker ? pubs[k] : seeds[k], len);
        mutate(work, &len, CAP, &s);
        /* an exact-size copy so that ASan sees any read past the end */
        uint8_t *input = malloc(len ? len : 1);
        memcpy(input, work, len);
        event_t ev;
        event_error_t err;
        event_origin_t origin = broker ? EVENT_FROM_BROKER : EVENT_FROM_WORKER;
        if (event_decode(&ev, input, len, origin, &err) != 0) {
            rejected++;
            int known = 0;
            for (int c = 0; c < 9; c++) {
                if (err.code && strcmp(err.code, codes[c]) == 0) {
                    known = 1;
                    codes_seen |= 1 << c;
                }
            }
            for (const char *p = err.detail; *p; p++)
                if ((unsigned char)*p < 0x20 || (unsigned char)*p > 0x7e)
                    known = 0;
            if (!known || !err.detail[0])
                bad_detail++;
            free(input);
            continue;
        }
        accepted++;
        buf_reset(&out);
        if (event_render_json(&ev, &out) != 0 || !json_valid(out.data, out.len)) {
            bad_json++;
            fprintf(stderr, "bad JSON: %.*s\n", (int)out.len, out.data);
        }
        /* Through the published form, the frame is the same. */
        if (!broker) {
            buf_reset(&packed);
            buf_reset(&out2);
            event_t pub;
            ev.seq = 31;
            if (!ev.has_ts) {
                ev.has_ts = 1;
                ev.ts = 77;
            }
            buf_reset(&out);
            int ok = event_render_json(&ev, &out) == 0;
            ok = ok && event_pack_published(&ev, 77, 31, "ep", 2, &packed) == 0;
            ok = ok && event_decode(&pub, packed.data, packed.len, EVENT_FROM_BROKER, &err) == 0;
            ok = ok && event_render_json(&pub, &out2) == 0;
            ok = ok && out.len == out2.len && memcmp(out.data, out2.data, out.len) == 0;
            if (!ok)
                mismatch++;
        }
        free(input);
    }
    fprintf(stderr, "mutations: %ld accepted, %ld rejected, codes seen 0x%x\n", accepted, rejected,
            codes_seen);
    CHECK(bad_json == 0);
    CHECK(mismatch == 0);
    CHECK(bad_detail == 0);
    CHECK(accepted > 2000); /* the loop reaches the rendering code */
    CHECK(rejected > 100000);
    buf_free(&out);
    buf_free(&out2);
    buf_free(&packed);
    msgpack_sbuffer_destroy(&m.sb);
}

int
main(void)
{
    test_checker();
    test_numbers();
    test_values();
    test_frame();
    test_floats_random();
    test_mutations();
    return check_report();
}
