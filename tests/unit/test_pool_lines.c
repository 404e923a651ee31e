/*  test_pool_lines.c: what taskcast-worker reads from and writes to its
 *  children (pool/lines.c): lines split across reads, over-long lines,
 *  the JSON objects a child may write (progress, message, result of any
 *  JSON type, error) and what is refused, and the job line with its args
 *  converted msgpack -> JSON -> msgpack without a change. */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "json.h"
#include "mbuild.h"
#include "pool.h"

static int
s_push(pool_lines_t *lr, const char *s)
{
    return pool_lines_push(lr, s, strlen(s));
}

static int
s_next_is(pool_lines_t *lr, int at_eof, int want_kind, const char *want)
{
    const char *line;
    size_t len;
    int kind = pool_lines_next(lr, at_eof, &line, &len);
    if (kind != want_kind)
        return 0;
    if (kind == POOL_LINE_NONE)
        return 1;
    return len == strlen(want) && memcmp(line, want, len) == 0;
}

static void
test_split(void)
{
    pool_lines_t lr;
    pool_lines_init(&lr, 16);
    CHECK(s_push(&lr, "{\"prog") == 0);
    CHECK(s_next_is(&lr, 0, POOL_LINE_NONE, NULL));
    CHECK(s_push(&lr, "ress\":1}\n{\"a\":") == 0);
    CHECK(s_next_is(&lr, 0, POOL_LINE_OK, "{\"progress\":1}"));
    CHECK(s_next_is(&lr, 0, POOL_LINE_NONE, NULL));
    CHECK(s_push(&lr, "2}\r\n\nlast") == 0);
    CHECK(s_next_is(&lr, 0, POOL_LINE_OK, "{\"a\":2}")); /* \r\n */
    CHECK(s_next_is(&lr, 0, POOL_LINE_OK, ""));
    CHECK(s_next_is(&lr, 0, POOL_LINE_NONE, NULL));
    CHECK(s_next_is(&lr, 1, POOL_LINE_OK, "last")); /* at end of file */
    CHECK(s_next_is(&lr, 1, POOL_LINE_NONE, NULL));
    /* a line of exactly max bytes is fine, one more is not */
    CHECK(s_push(&lr, "0123456789abcdef\n") == 0);
    CHECK(s_next_is(&lr, 0, POOL_LINE_OK, "0123456789abcdef"));
    CHECK(s_push(&lr, "0123456789abcdefX\nok\n") == 0);
    CHECK(s_next_is(&lr, 0, POOL_LINE_LONG, "0123456789abcdef"));
    CHECK(s_next_is(&lr, 0, POOL_LINE_OK, "ok"));
    pool_lines_free(&lr);
}

static void
test_long_across_reads(void)
{
    pool_lines_t lr;
    pool_lines_init(&lr, POOL_LINE_MAX);
    size_t n = 40000;
    char *chunk = malloc(n);
    memset(chunk, 'x', n);
    CHECK(pool_lines_push(&lr, chunk, n) == 0);
    CHECK(s_next_is(&lr, 0, POOL_LINE_NONE, NULL)); /* 40000: could still end in time */
    CHECK(pool_lines_push(&lr, chunk, n) == 0);
    const char *line;
    size_t len;
    CHECK(pool_lines_next(&lr, 0, &line, &len) == POOL_LINE_LONG && len == POOL_LINE_MAX);
    /* the rest of that line is dropped as it comes, without growing the buffer */
    for (int i = 0; i < 10; i++)
        CHECK(pool_lines_push(&lr, chunk, n) == 0);
    CHECK(lr.buf.len - lr.head == 0);
    CHECK(s_push(&lr, "xx\n{\"progress\":5}\n") == 0);
    CHECK(s_next_is(&lr, 0, POOL_LINE_OK, "{\"progress\":5}"));
    CHECK(lr.buf.cap < 4 * (size_t)POOL_LINE_MAX);
    free(chunk);
    pool_lines_free(&lr);
}

static int
s_parse(const char *text, pool_line_t *pl, buf_t *res, char *err)
{
    err[0] = '\0';
    return pool_line_parse(text, strlen(text), pl, res, err, 160);
}

/*  1 if res holds the msgpack of json (converted by common/json.c). */
static int
s_same_msgpack(const buf_t *res, const char *json)
{
    buf_t want;
    buf_init(&want);
    char err[100];
    int ok = json_to_msgpack(json, strlen(json), &want, err, sizeof err) == 0 &&
             want.len == res->len && memcmp(want.data, res->data, res->len) == 0;
    buf_free(&want);
    return ok;
}

static void
test_parse(void)
{
    pool_line_t pl;
    buf_t res;
    buf_init(&res);
    char err[160];
    CHECK(s_parse("{\"progress\":42,\"message\":\"step \\u00e9 \\\"2\\\"\"}", &pl, &res, err) == 0);
    CHECK(pl.has_progress && !pl.progress.is_float && pl.progress.u == 42);
    CHECK(pl.has_message);
    CHECK_STR(pl.message, "step \xc3\xa9 \"2\"");
    CHECK(!pl.has_result && !pl.has_error && res.len == 0);
    CHECK(s_parse(" {\"progress\": 12.5} ", &pl, &res, err) == 0);
    CHECK(pl.has_progress && pl.progress.is_float && pl.progress.f == 12.5 && !pl.has_message);
    CHECK(s_parse("{\"progress\":0}", &pl, &res, err) == 0 && pl.progress.u == 0);
    CHECK(s_parse("{\"progress\":100.0}", &pl, &res, err) == 0 && pl.progress.f == 100.0);
    CHECK(s_parse("{\"progress\":1e2}", &pl, &res, err) == 0 && pl.progress.is_float);
    /* progress out of range or not a number */
    const char *bad_progress[] = {"{\"progress\":101}", "{\"progress\":-1}",
                                  "{\"progress\":100.5}", "{\"progress\":\"50\"}",
                                  "{\"progress\":null}", "{\"progress\":1e400}"};
    for (size_t i = 0; i < sizeof bad_progress / sizeof bad_progress[0]; i++) {
        CHECK(s_parse(bad_progress[i], &pl, &res, err) == -1);
        CHECK_STR(err, "\"progress\" must be a number from 0 to 100");
    }
    /* a result of any JSON type */
    const char *results[] = {"{\"a\":[1,2.5,null,true,false,\"x\"],\"b\":{}}", "\"a \\n string\"",
                             "42", "-7", "3.25", "null", "true", "[]", "18446744073709551615"};
    for (size_t i = 0; i < sizeof results / sizeof results[0]; i++) {
        char line[256];
        snprintf(line, sizeof line, "{\"result\": %s }", results[i]);
        CHECK(s_parse(line, &pl, &res, err) == 0 && pl.has_result);
        CHECK(s_same_msgpack(&res, results[i]));
    }
    /* an error line, unknown keys beside known ones */
    CHECK(s_parse("{\"error\":\"no such image\",\"future\":[1]}", &pl, &res, err) == 0);
    CHECK(pl.has_error && !pl.has_result);
    CHECK_STR(pl.error, "no such image");
    buf_free(&res);
}

static void
test_refused(void)
{
    pool_line_t pl;
    buf_t res;
    buf_init(&res);
    char err[160];
    static const struct {
        const char *line, *want;
    } cases[] = {
        {"[1,2]", "a line that is not a JSON object"},
        {"\"text\"", "a line that is not a JSON object"},
        {"17", "a line that is not a JSON object"},
        {"null", "a line that is not a JSON object"},
        {"not json", "a line that is not JSON"},
        {"{\"progress\":1", "a line that is not JSON"},
        {"{\"progress\":1} {}", "a line that is not JSON"},
        {"{\"result\":\"\\ud800\"}", "a line that is not JSON"}, /* a lone surrogate */
        {"{}", "a line without progress, message, result or error"},
        {"{\"other\":1}", "a line without progress, message, result or error"},
        {"{\"message\":5}", "\"message\" must be a string"},
        {"{\"error\":{}}", "\"error\" must be a string"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        res.len = 0;
        buf_append(&res, "junk", 4);
        CHECK(s_parse(cases[i].line, &pl, &res, err) == -1);
        CHECK_STR(err, cases[i].want);
        CHECK(res.len == 0); /* nothing half-kept */
    }
    /* a message over 4096 bytes */
    size_t n = EVENT_MESSAGE_MAX + 1;
    char *line = malloc(n + 32);
    strcpy(line, "{\"message\":\"");
    memset(line + 12, 'm', n);
    strcpy(line + 12 + n, "\"}");
    CHECK(s_parse(line, &pl, &res, err) == -1);
    CHECK_STR(err, "\"message\" longer than 4096 bytes");
    line[12 + n - 1] = '"'; /* exactly 4096 */
    line[12 + n] = '}';
    line[12 + n + 1] = '\0';
    CHECK(s_parse(line, &pl, &res, err) == 0 && strlen(pl.message) == EVENT_MESSAGE_MAX);
    free(line);
    buf_free(&res);
}

/*  The args of a job: msgpack -> the job line (JSON) -> msgpack again. */
static void
test_job_line(void)
{
    const char *args_json = "{\"n\":[1,-2,2.5,null,true,false],\"s\":\"\\u00e9\\n\\\"q\\\"\","
                            "\"big\":18446744073709551615,\"neg\":-9223372036854775808,"
                            "\"m\":{\"k\":{}}}";
    buf_t args, line;
    buf_init(&args);
    buf_init(&line);
    char err[100];
    CHECK(json_to_msgpack(args_json, strlen(args_json), &args, err, sizeof err) == 0);
    jobs_msg_t m;
    memset(&m, 0, sizeof m);
    m.type = JOBS_JOB;
    m.task_id = (event_text_t){"t\"1", 3};
    m.user_id = (event_text_t){"7", 1};
    m.kind = (event_text_t){"render", 6};
    m.attempt = 2;
    m.args = (const uint8_t *)args.data;
    m.args_len = args.len;
    CHECK(pool_job_line(&line, &m) == 0);
    CHECK(line.len > 0 && line.data[line.len - 1] == '\n');
    CHECK(memchr(line.data, '\n', line.len) == line.data + line.len - 1); /* one line */
    buf_append_char(&line, '\0');
    static const char head[] = "{\"task_id\":\"t\\\"1\",\"user_id\":\"7\",\"kind\":\"render\","
                               "\"args\":{";
    CHECK(strncmp(line.data, head, sizeof head - 1) == 0);
    CHECK(strstr(line.data, ",\"attempt\":2}\n") != NULL);
    /* the args read back give the same msgpack */
    json_tok_t toks[64];
    size_t len = strlen(line.data);
    int n = json_parse(line.data, len, toks, 64, 32);
    CHECK(n > 0);
    int a = n > 0 ? json_object_get(line.data, toks, 0, "args") : -1;
    CHECK(a > 0);
    if (a > 0) {
        buf_t back;
        buf_init(&back);
        CHECK(json_to_msgpack(line.data + toks[a].start, toks[a].end - toks[a].start, &back, err,
                              sizeof err) == 0);
        CHECK(back.len == args.len && memcmp(back.data, args.data, args.len) == 0);
        buf_free(&back);
    }
    /* absent args are null; args that cannot be JSON (an ext) are refused */
    buf_reset(&line);
    m.args = NULL;
    CHECK(pool_job_line(&line, &m) == 0);
    buf_append_char(&line, '\0');
    CHECK(strstr(line.data, "\"args\":null,") != NULL);
    buf_reset(&line);
    static const uint8_t ext[] = {0xd4, 0x01, 0x00}; /* fixext 1 */
    m.args = ext;
    m.args_len = sizeof ext;
    CHECK(pool_job_line(&line, &m) == -1 && line.len == 0);
    buf_free(&args);
    buf_free(&line);
}

int
main(void)
{
    test_split();
    test_long_across_reads();
    test_parse();
    test_refused();
    test_job_line();
    return check_report();
}
