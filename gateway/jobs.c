/*  jobs.c: browsers cancelling their jobs, through the broker's jobs
 *  endpoint.
 *
 *  A client sends {"type":"cancel","task_id":"..."} on its WebSocket; the
 *  gateway asks the broker over a DEALER to the jobs endpoint, with the
 *  session's authenticated user as user_id (so a client can only ever
 *  cancel its own user's jobs) and a request number as pseq, which the
 *  broker echoes. A refusal (not_found: no such job of this user, also for
 *  another user's) comes back to the client as an error frame; success
 *  needs no frame: the task's cancelled event follows on the stream. An
 *  answer that does not come within S_ANSWER_MS, or a link that is down,
 *  is an "unavailable" error frame. Nothing here closes a connection.
 */
#include <inttypes.h>
#include <msgpack.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "dlist.h"
#include "gateway.h"
#include "json.h"
#include "mpread.h"
#include "wire.h"
#include "zmtp.h"

#define S_FRAME_MAX   65536 /* an answer is small */
#define S_ANSWER_MS   5000  /* a cancel unanswered this long is reported unavailable */
#define S_PENDING_MAX 1024  /* cancels in flight, all sessions together */

/*  A cancel (WebSocket) or a submit (HTTP) waiting for its answer. */
typedef struct gw_cancel {
    struct gw_cancel *prev, *next;
    gw_session_t *s;
    uint64_t req;
    int64_t sent_ms;
    int http; /* a submit: s->submit gets the answer */
} gw_cancel_t;

#define S_BODY_MAX (EVENT_DATA_MAX + 8192) /* a submit's JSON body */

/*  POST /api/v1/jobs being served. */
typedef struct gw_submit {
    buf_t body;
    char user[EVENT_USER_ID_MAX + 1]; /* the token's sub */
    int service;                      /* the token may submit for any user */
    struct lws *wsi;
    int too_big;
    unsigned int status; /* the answer, once known (0: not yet) */
    buf_t answer;
} gw_submit_t;

static void s_on_frame(gateway_t *gw, gw_zconn_t *c, const uint8_t *data, size_t len, int first,
                       int more);

static void
s_on_up(gateway_t *gw, gw_zconn_t *c)
{
    (void)gw;
    (void)c;
}

int
gw_jobs_open(gateway_t *gw)
{
    const gw_zconn_spec_t spec = {"jobs",      gw->jobs_ep, "DEALER",  "ROUTER",
                                  S_FRAME_MAX, s_on_up,     s_on_frame};
    return gw_zconn_open(gw, &gw->jobs, &spec);
}

static void
s_drop(gateway_t *gw, gw_cancel_t *p)
{
    DLIST_REMOVE(gw->cancels, gw->cancels_tail, p, prev, next);
    gw->ncancels--;
    free(p);
}

void
gw_jobs_close(gateway_t *gw)
{
    while (gw->cancels)
        s_drop(gw, gw->cancels);
    gw_zconn_close(&gw->jobs);
}

/*  An error frame to the session (if its control slot is free: a client
 *  flooding cancels loses some answers, never the connection). */
static void
s_tell(gateway_t *gw, gw_session_t *s, gw_error_t e, const char *sentence)
{
    if (s->ctl || s->state == GW_S_CLOSING)
        return;
    const gw_error_info_t *info = gw_error_info(e);
    s->ctl = gw_frame_error(info->code, sentence ? sentence : info->sentence);
    if (s->ctl && s->wsi)
        lws_callback_on_writable(s->wsi);
}

void
gw_jobs_cancel(gateway_t *gw, gw_session_t *s, const char *task_id, size_t len)
{
    buf_t *out = gw_zconn_out(&gw->jobs);
    gw_cancel_t *p = NULL;
    if (!out || gw->ncancels >= S_PENDING_MAX || !(p = calloc(1, sizeof *p))) {
        s_tell(gw, s, GW_E_JOBS_UNAVAILABLE, NULL);
        return;
    }
    p->s = s;
    p->req = ++gw->next_cancel;
    p->sent_ms = clock_mono_ms();
    DLIST_APPEND(gw->cancels, gw->cancels_tail, p, prev, next);
    gw->ncancels++;
    buf_t b;
    buf_init(&b);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &b, buf_msgpack_write);
    msgpack_pack_map(&pk, 4);
    wire_pack_kv_str(&pk, "type", "cancel", 6);
    wire_pack_kv_str(&pk, "task_id", task_id, len);
    wire_pack_kv_str(&pk, "user_id", s->user->id, s->user->id_len);
    wire_pack_kv_u64(&pk, "pseq", p->req);
    if (buf_ok(&b))
        zmtp_put_frame(out, b.data, b.len, 0);
    buf_free(&b);
    log_info(&gw->log, "conn=%u asked to cancel task %.*s", s->id, (int)len, task_id);
}

void
gw_jobs_forget(gateway_t *gw, gw_session_t *s)
{
    for (gw_cancel_t *p = gw->cancels, *n; p; p = n) {
        n = p->next;
        if (p->s == s)
            s_drop(gw, p);
    }
}

static void s_http_answer(gateway_t *gw, gw_session_t *s, unsigned int status, const char *code,
                          const char *detail, const char *task_id, size_t tlen);

void
gw_jobs_check(gateway_t *gw, int64_t now_ms)
{
    while (gw->cancels && now_ms - gw->cancels->sent_ms > S_ANSWER_MS) {
        gw_cancel_t *p = gw->cancels;
        const gw_error_info_t *e = gw_error_info(GW_E_JOBS_UNAVAILABLE);
        if (p->http)
            s_http_answer(gw, p->s, e->http, e->code, e->sentence, NULL, 0);
        else
            s_tell(gw, p->s, GW_E_JOBS_UNAVAILABLE, NULL);
        s_drop(gw, p);
    }
}

/*  {"ok":..,"pseq":N[,"error":..,"detail":..]} from the broker. */
static void
s_on_frame(gateway_t *gw, gw_zconn_t *c, const uint8_t *data, size_t len, int first, int more)
{
    (void)c;
    if (!first || more)
        return; /* answers are one frame */
    mp_reader_t r;
    mp_value_t top, k, v;
    int ok = 0;
    uint64_t pseq = 0;
    char detail[200] = "", code[32] = "", task[EVENT_TASK_ID_MAX + 1] = "";
    mp_reader_init(&r, data, len);
    if (mp_read(&r, &top) != 0 || top.type != MP_MAP)
        return;
    for (uint32_t i = 0; i < top.v.n; i++) {
        if (mp_read_pair(&r, &k, &v, 8) != 0)
            return;
        if (mp_str_eq(&k, "ok") && v.type == MP_BOOL)
            ok = v.v.b;
        else if (mp_str_eq(&k, "pseq") && v.type == MP_UINT)
            pseq = v.v.u;
        else if (mp_str_eq(&k, "detail") && v.type == MP_STR &&
                 event_utf8_valid(v.v.s.p, v.v.s.len))
            snprintf(detail, sizeof detail, "%.*s", (int)v.v.s.len, v.v.s.p);
        else if (mp_str_eq(&k, "error") && v.type == MP_STR && v.v.s.len < sizeof code &&
                 event_utf8_valid(v.v.s.p, v.v.s.len))
            snprintf(code, sizeof code, "%.*s", (int)v.v.s.len, v.v.s.p);
        else if (mp_str_eq(&k, "task_id") && v.type == MP_STR && v.v.s.len < sizeof task &&
                 event_utf8_valid(v.v.s.p, v.v.s.len))
            snprintf(task, sizeof task, "%.*s", (int)v.v.s.len, v.v.s.p);
    }
    for (gw_cancel_t *p = gw->cancels; p; p = p->next) {
        if (p->req != pseq)
            continue;
        if (p->http) {
            /* refusals of the submit itself are the client's to fix (400),
             * a full queue or broker is not (503) */
            unsigned int st = ok ? 202
                              : strcmp(code, "queue_full") == 0 ||
                                      strcmp(code, "overloaded") == 0 ||
                                      strcmp(code, "internal") == 0
                                  ? 503
                              : strcmp(code, "task_exists") == 0 ? 409
                                                                 : 400;
            s_http_answer(gw, p->s, st, code[0] ? code : "bad_request", detail, task, strlen(task));
        }
        else if (!ok)
            s_tell(gw, p->s, GW_E_CANCEL_REFUSED, detail[0] ? detail : NULL);
        s_drop(gw, p);
        return;
    }
}

/* ---------------------------------------------------------------- POST /api/v1/jobs */

static void
s_submit_free(gw_session_t *s)
{
    if (!s->submit)
        return;
    buf_free(&s->submit->body);
    buf_free(&s->submit->answer);
    free(s->submit);
    s->submit = NULL;
}

/*  Keeps the answer and asks lws to write it. */
static void
s_http_answer(gateway_t *gw, gw_session_t *s, unsigned int status, const char *code,
              const char *detail, const char *task_id, size_t tlen)
{
    (void)gw;
    gw_submit_t *sub = s->submit;
    if (!sub || sub->status)
        return;
    buf_reset(&sub->answer);
    if (status == 202) {
        buf_append_str(&sub->answer, "{\"task_id\":");
        event_json_string(&sub->answer, task_id, tlen);
        buf_append_char(&sub->answer, '}');
    }
    else
        gw_error_json(&sub->answer, code, detail && *detail ? detail : code);
    sub->status = status;
    lws_callback_on_writable(sub->wsi);
}

int
gw_jobs_http_start(gateway_t *gw, struct lws *wsi, gw_session_t *s, const jwt_claims_t *claims)
{
    if (!claims->service && !claims->admin &&
        (claims->sub_len > EVENT_USER_ID_MAX || !event_user_id_valid(claims->sub, claims->sub_len)))
        return gw_jobs_http_refuse(gw, wsi, s, 403, "forbidden",
                                   "the token's sub is not a user id");
    gw_submit_t *sub = calloc(1, sizeof *sub);
    if (!sub)
        return -1;
    buf_init(&sub->body);
    buf_init(&sub->answer);
    snprintf(sub->user, sizeof sub->user, "%.*s", (int)(sizeof sub->user - 1), claims->sub);
    sub->service = claims->service || claims->admin;
    sub->wsi = wsi;
    s->submit = sub;
    return 0; /* the body follows (LWS_CALLBACK_HTTP_BODY) */
}

int
gw_jobs_http_refuse(gateway_t *gw, struct lws *wsi, gw_session_t *s, unsigned int status,
                    const char *code, const char *sentence)
{
    gw_submit_t *sub = calloc(1, sizeof *sub);
    if (!sub)
        return -1;
    buf_init(&sub->body);
    buf_init(&sub->answer);
    sub->wsi = wsi;
    s->submit = sub;
    gw_error_json(&sub->answer, code, sentence);
    sub->status = status; /* answered once the body is read (gw_jobs_http_done) */
    return 0;
}

int
gw_jobs_http_body(gateway_t *gw, struct lws *wsi, gw_session_t *s, const void *in, size_t len)
{
    (void)gw;
    (void)wsi;
    gw_submit_t *sub = s->submit;
    if (!sub)
        return -1;
    if (sub->status)
        return 0; /* refused already: the body is read and dropped */
    if (sub->too_big || sub->body.len + len > S_BODY_MAX)
        sub->too_big = 1;
    else
        buf_append(&sub->body, in, len);
    return 0;
}

/*  The value of key in the body as msgpack, appended to pk (0), or -1 with
 *  why. */
static int
s_put_json(msgpack_packer *pk, const char *text, const json_tok_t *tok, char *why, size_t whylen)
{
    buf_t mp;
    buf_init(&mp);
    size_t at = tok->start, end = tok->end;
    if (tok->type == JSON_STRING) /* its span leaves out the quotes */
        at--, end++;
    int rc = json_to_msgpack(text + at, end - at, &mp, why, whylen);
    if (rc == 0 && buf_ok(&mp))
        pk->callback(pk->data, mp.data, mp.len);
    else if (rc == 0)
        rc = -1, snprintf(why, whylen, "out of memory");
    buf_free(&mp);
    return rc;
}

int
gw_jobs_http_done(gateway_t *gw, struct lws *wsi, gw_session_t *s)
{
    (void)wsi;
    gw_submit_t *sub = s->submit;
    if (!sub)
        return -1;
    if (sub->status) { /* refused before its body: answer now that it is read */
        lws_callback_on_writable(sub->wsi);
        return 0;
    }
    const gw_error_info_t *bad = gw_error_info(GW_E_BAD_SUBMIT);
    if (sub->too_big) {
        s_http_answer(gw, s, 413, "message_too_big", "a submit's body is at most 72 KiB", NULL, 0);
        return 0;
    }
    /* {"kind":..,"user_id":..,"args":..,"task_id":..,"timeout_s":..,"max_retries":..} */
    enum { S_TOKS = 4096 };
    json_tok_t *toks = malloc(S_TOKS * sizeof *toks);
    const char *text = sub->body.data ? sub->body.data : "";
    int n = toks && buf_ok(&sub->body) ? json_parse(text, sub->body.len, toks, S_TOKS, 34) : -1;
    if (n <= 0 || toks[0].type != JSON_OBJECT) {
        free(toks);
        s_http_answer(gw, s, 400, bad->code, "the body must be one JSON object", NULL, 0);
        return 0;
    }
    char why[200] = "", user[EVENT_USER_ID_MAX + 1] = "";
    int iu = json_object_get(text, toks, 0, "user_id");
    if (iu > 0 &&
        (toks[iu].type != JSON_STRING || json_string_copy(text, &toks[iu], user, sizeof user) < 0))
        snprintf(why, sizeof why, "user_id must be a user id string");
    else if (iu <= 0)
        snprintf(user, sizeof user, "%s", sub->user);
    if (!why[0] && !sub->service && strcmp(user, sub->user) != 0) {
        free(toks);
        s_http_answer(gw, s, 403, "forbidden",
                      "a user's token submits for that user only (a service token for any)", NULL,
                      0);
        return 0;
    }
    /* the broker checks every field; here they are only carried over */
    buf_t *out = gw_zconn_out(&gw->jobs);
    gw_cancel_t *p = NULL;
    if (!why[0] && (!out || gw->ncancels >= S_PENDING_MAX || !(p = calloc(1, sizeof *p)))) {
        free(toks);
        const gw_error_info_t *e = gw_error_info(GW_E_JOBS_UNAVAILABLE);
        s_http_answer(gw, s, e->http, e->code, e->sentence, NULL, 0);
        return 0;
    }
    buf_t m;
    buf_init(&m);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &m, buf_msgpack_write);
    static const char *const keys[] = {"kind", "args", "task_id", "timeout_s", "max_retries"};
    uint32_t pairs = 3;
    int at[5];
    for (int i = 0; i < 5; i++)
        if ((at[i] = json_object_get(text, toks, 0, keys[i])) > 0)
            pairs++;
    msgpack_pack_map(&pk, pairs);
    wire_pack_kv_str(&pk, "type", "submit", 6);
    wire_pack_kv_str(&pk, "user_id", user, strlen(user));
    for (int i = 0; i < 5 && !why[0]; i++)
        if (at[i] > 0) {
            wire_pack_str(&pk, keys[i]);
            if (s_put_json(&pk, text, &toks[at[i]], why, sizeof why) != 0)
                break;
        }
    free(toks);
    if (why[0] || !buf_ok(&m)) {
        free(p);
        buf_free(&m);
        s_http_answer(gw, s, 400, bad->code, why[0] ? why : "out of memory", NULL, 0);
        return 0;
    }
    p->s = s;
    p->http = 1;
    p->req = ++gw->next_cancel;
    p->sent_ms = clock_mono_ms();
    wire_pack_kv_u64(&pk, "pseq", p->req);
    DLIST_APPEND(gw->cancels, gw->cancels_tail, p, prev, next);
    gw->ncancels++;
    zmtp_put_frame(out, m.data, m.len, 0);
    buf_free(&m);
    log_info(&gw->log, "job submit over HTTP for user %s", user);
    return 0;
}

int
gw_jobs_http_writeable(gateway_t *gw, struct lws *wsi, gw_session_t *s)
{
    gw_submit_t *sub = s->submit;
    if (!sub || !sub->status)
        return 0;
    /* Detached first: ending the transaction lets lws free the connection's
     * user data (s) before the next request on it. */
    s->submit = NULL;
    gw_jobs_forget(gw, s);
    int rc = buf_ok(&sub->answer) ? gw_http_respond(gw, wsi, sub->status, "application/json",
                                                    sub->answer.data, sub->answer.len)
                                  : -1;
    buf_free(&sub->body);
    buf_free(&sub->answer);
    free(sub);
    return rc;
}

void
gw_jobs_http_closed(gateway_t *gw, gw_session_t *s)
{
    if (!s->submit)
        return;
    gw_jobs_forget(gw, s);
    s_submit_free(s);
}
