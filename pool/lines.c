/*  lines.c: JSON lines between the worker and its children.
 *
 *  From a child: stdout is split into lines of at most POOL_LINE_MAX bytes
 *  and each is read as a JSON object (common/json.c), its result converted
 *  to msgpack. To a child: the job as one JSON line, the args converted from
 *  msgpack exactly as browsers see event data (common/event_json.c).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "pool.h"

/* ---------------------------------------------------------------- splitting */

void
pool_lines_init(pool_lines_t *lr, size_t max)
{
    buf_init(&lr->buf);
    lr->head = 0;
    lr->max = max;
    lr->skipping = 0;
}

void
pool_lines_free(pool_lines_t *lr)
{
    buf_free(&lr->buf);
    lr->head = 0;
}

int
pool_lines_push(pool_lines_t *lr, const char *p, size_t n)
{
    if (lr->head > 0) { /* drop what was handed out */
        memmove(lr->buf.data, lr->buf.data + lr->head, lr->buf.len - lr->head);
        lr->buf.len -= lr->head;
        lr->head = 0;
    }
    if (lr->skipping) {
        const char *nl = memchr(p, '\n', n);
        if (!nl)
            return 0;
        lr->skipping = 0;
        n -= (size_t)(nl + 1 - p);
        p = nl + 1;
    }
    buf_append(&lr->buf, p, n);
    return buf_ok(&lr->buf) ? 0 : -1;
}

int
pool_lines_next(pool_lines_t *lr, int at_eof, const char **line, size_t *len)
{
    const char *start = lr->buf.data + lr->head;
    size_t left = lr->buf.len - lr->head;
    if (left == 0)
        return POOL_LINE_NONE;
    const char *nl = memchr(start, '\n', left);
    size_t n = nl ? (size_t)(nl - start) : left;
    if (n > lr->max) {
        *line = start;
        *len = lr->max;
        if (nl)
            lr->head += n + 1;
        else {
            lr->head = lr->buf.len;
            lr->skipping = !at_eof;
        }
        return POOL_LINE_LONG;
    }
    if (!nl && !at_eof)
        return POOL_LINE_NONE;
    lr->head += n + (nl != NULL);
    if (n > 0 && start[n - 1] == '\r')
        n--;
    *line = start;
    *len = n;
    return POOL_LINE_OK;
}

/* ---------------------------------------------------------------- a child's line */

static int
s_fail(char *err, size_t errlen, const char *sentence)
{
    snprintf(err, errlen, "%s", sentence);
    return -1;
}

static int
s_progress(const char *text, const json_tok_t *t, jobs_progress_t *out)
{
    if (t->type != JSON_NUMBER)
        return -1;
    const char *p = text + t->start;
    size_t n = t->end - t->start;
    if (memchr(p, '.', n) || memchr(p, 'e', n) || memchr(p, 'E', n)) {
        char tmp[64];
        if (n >= sizeof tmp)
            return -1;
        memcpy(tmp, p, n);
        tmp[n] = '\0';
        double d = strtod(tmp, NULL);
        if (!(d >= 0.0 && d <= 100.0))
            return -1;
        *out = (jobs_progress_t){1, 0, d};
        return 0;
    }
    int64_t i;
    if (json_number_i64(text, t, &i) != 0 || i < 0 || i > 100)
        return -1;
    *out = (jobs_progress_t){0, (uint64_t)i, 0};
    return 0;
}

int
pool_line_parse(const char *line, size_t len, pool_line_t *out, buf_t *result, char *err,
                size_t errlen)
{
    memset(out, 0, sizeof *out);
    buf_reset(result);
    size_t max_toks = 1; /* as json_to_msgpack() bounds them */
    for (size_t i = 0; i < len; i++)
        if (line[i] == ',' || line[i] == ':' || line[i] == '[' || line[i] == '{')
            max_toks++;
    json_tok_t *toks = malloc(max_toks * sizeof *toks);
    if (!toks)
        return s_fail(err, errlen, "out of memory reading a line");
    int rc = -1;
    int n = json_parse(line, len, toks, max_toks, 64);
    if (n < 0) {
        s_fail(err, errlen, "a line that is not JSON");
        goto done;
    }
    if (toks[0].type != JSON_OBJECT) {
        s_fail(err, errlen, "a line that is not a JSON object");
        goto done;
    }
    int known = 0;
    for (int k = 1; k < n; k = (int)toks[k + 1].next) {
        const json_tok_t *key = &toks[k], *val = &toks[k + 1];
        if (json_string_eq(line, key, "progress")) {
            if (s_progress(line, val, &out->progress) != 0) {
                s_fail(err, errlen, "\"progress\" must be a number from 0 to 100");
                goto done;
            }
            out->has_progress = known = 1;
        }
        else if (json_string_eq(line, key, "message") || json_string_eq(line, key, "error")) {
            int is_msg = json_string_eq(line, key, "message");
            char *dst = is_msg ? out->message : out->error;
            if (val->type != JSON_STRING) {
                s_fail(err, errlen,
                       is_msg ? "\"message\" must be a string" : "\"error\" must be a string");
                goto done;
            }
            if (json_string_copy(line, val, dst, EVENT_MESSAGE_MAX + 1) < 0) {
                snprintf(err, errlen, "\"%s\" longer than %d bytes", is_msg ? "message" : "error",
                         EVENT_MESSAGE_MAX);
                goto done;
            }
            if (is_msg)
                out->has_message = 1;
            else
                out->has_error = 1;
            known = 1;
        }
        else if (json_string_eq(line, key, "result")) {
            /* a string's span excludes its quotes */
            size_t s = val->start - (val->type == JSON_STRING);
            size_t e = val->end + (val->type == JSON_STRING);
            char inner[128];
            buf_reset(result);
            if (json_to_msgpack(line + s, e - s, result, inner, sizeof inner) != 0) {
                snprintf(err, errlen, "\"result\" cannot be kept: %s", inner);
                goto done;
            }
            if (result->len > EVENT_DATA_MAX) {
                snprintf(err, errlen, "\"result\" larger than %d bytes as msgpack", EVENT_DATA_MAX);
                goto done;
            }
            out->has_result = known = 1;
        }
    }
    if (!known) {
        s_fail(err, errlen, "a line without progress, message, result or error");
        goto done;
    }
    rc = 0;
done:
    free(toks);
    if (rc != 0)
        buf_reset(result);
    return rc;
}

/* ---------------------------------------------------------------- the job line */

int
pool_job_line(buf_t *out, const jobs_msg_t *job)
{
    size_t start = out->len;
    buf_append_str(out, "{\"task_id\":");
    event_json_string(out, job->task_id.p, job->task_id.len);
    buf_append_str(out, ",\"user_id\":");
    event_json_string(out, job->user_id.p, job->user_id.len);
    buf_append_str(out, ",\"kind\":");
    event_json_string(out, job->kind.p, job->kind.len);
    buf_append_str(out, ",\"args\":");
    if (!job->args)
        buf_append_str(out, "null");
    else if (event_json_value(out, job->args, job->args_len) != 0) {
        out->len = start;
        return -1;
    }
    buf_printf(out, ",\"attempt\":%llu}\n", (unsigned long long)job->attempt);
    if (!buf_ok(out)) {
        out->len = start;
        return -1;
    }
    return 0;
}
