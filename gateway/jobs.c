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
#include "mpread.h"
#include "wire.h"
#include "zmtp.h"

#define S_FRAME_MAX   65536 /* an answer is small */
#define S_ANSWER_MS   5000  /* a cancel unanswered this long is reported unavailable */
#define S_PENDING_MAX 1024  /* cancels in flight, all sessions together */

/*  A cancel waiting for its answer. */
typedef struct gw_cancel {
    struct gw_cancel *prev, *next;
    gw_session_t *s;
    uint64_t req;
    int64_t sent_ms;
} gw_cancel_t;

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

void
gw_jobs_check(gateway_t *gw, int64_t now_ms)
{
    while (gw->cancels && now_ms - gw->cancels->sent_ms > S_ANSWER_MS) {
        s_tell(gw, gw->cancels->s, GW_E_JOBS_UNAVAILABLE, NULL);
        s_drop(gw, gw->cancels);
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
    char detail[200] = "";
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
    }
    for (gw_cancel_t *p = gw->cancels; p; p = p->next) {
        if (p->req != pseq)
            continue;
        if (!ok)
            s_tell(gw, p->s, GW_E_CANCEL_REFUSED, detail[0] ? detail : NULL);
        s_drop(gw, p);
        return;
    }
}
