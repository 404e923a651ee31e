/*  session.c: one browser WebSocket: authenticate after the handshake, sync,
 *  then follow the user's ring.
 *
 *  Authentication happens here, in ESTABLISHED, never before the handshake:
 *  a refused client always receives {"type":"error",...} and a 4401/4403
 *  close code instead of a bare connection reset.
 *
 *  Write order on every WRITEABLE: a control frame (hello or error), owed
 *  pongs, the sync batch, then the ring; what is ready goes out in one
 *  send. Frames at or below last_seq are skipped, so the boundary between a
 *  snapshot/replay and the live stream has neither a gap nor a duplicate; a
 *  frame above last_seq + 1 is a gap, and the session asks sync for a
 *  replay before going on (ring.c's gw_ring_next() finds both).
 *
 *  A session never calls the link: a sync request is queued in the
 *  context (gw->syncq) and the link sends every queued request before the
 *  loop sleeps.
 */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cfg.h"
#include "clock.h"
#include "dlist.h"
#include "gateway.h"
#include "json.h"

#define S_WRITES_PER_CALLBACK 64           /* frames coalesced into one send */
#define S_WRITE_BYTES         (256 * 1024) /* bytes coalesced into one send */
#define S_PONGS_MAX           8

/* ---------------------------------------------------------------- lists */

static int
s_in_pending(gateway_t *gw, gw_session_t *s)
{
    return s->pprev || gw->pending == s;
}

static void
s_pending_add(gateway_t *gw, gw_session_t *s)
{
    if (!s_in_pending(gw, s))
        DLIST_APPEND(gw->pending, gw->pending_tail, s, pprev, pnext);
}

static void
s_pending_remove(gateway_t *gw, gw_session_t *s)
{
    if (s_in_pending(gw, s))
        DLIST_REMOVE(gw->pending, gw->pending_tail, s, pprev, pnext);
}

/*  Out of the sync or the wake queue, whichever it is in. */
static void
s_dequeue(gateway_t *gw, gw_session_t *s)
{
    if (s->queued == GW_Q_SYNC)
        DLIST_REMOVE(gw->syncq, gw->syncq_tail, s, qprev, qnext);
    else if (s->queued == GW_Q_WAKE)
        DLIST_REMOVE(gw->wakeq, gw->wakeq_tail, s, qprev, qnext);
    s->queued = 0;
}

void
gw_session_wake(gateway_t *gw, gw_session_t *s)
{
    if (s->state == GW_S_LIVE && !s->queued) {
        s->queued = GW_Q_WAKE;
        DLIST_APPEND(gw->wakeq, gw->wakeq_tail, s, qprev, qnext);
    }
}

/* ---------------------------------------------------------------- failing */

void
gw_session_fail(gateway_t *gw, gw_session_t *s, gw_error_t e, const char *detail)
{
    if (s->state == GW_S_CLOSING)
        return;
    const gw_error_info_t *info = gw_error_info(e);
    s_pending_remove(gw, s);
    s_dequeue(gw, s);
    if (s->user)
        gw_ring_park(&s->user->ring, &s->cursor); /* reads nothing more */
    gw_batch_free(&s->batch);
    gw_frame_unref(&s->ctl);
    s->ctl = gw_frame_error(info->code, detail ? detail : info->sentence);
    s->close_code = info->close;
    s->state = GW_S_CLOSING;
    s->pongs = 0;
    /* A client that does not read its error frame still goes away. */
    lws_set_timeout(s->wsi, PENDING_TIMEOUT_CLOSE_SEND, 5);
    lws_callback_on_writable(s->wsi);
}

/* ---------------------------------------------------------------- authentication */

/*  Reads since= and epoch=. 0, or -1 with a sentence for the client. */
static int
s_resume_args(struct lws *wsi, gw_session_t *s, const char **why)
{
    char since[32], epoch[EVENT_EPOCH_MAX + 2];
    int has_since = gw_http_arg(wsi, "since=", since, sizeof since) == 0;
    int has_epoch = gw_http_arg(wsi, "epoch=", epoch, sizeof epoch) == 0;
    if (has_since) {
        if (cfg_parse_u64(since, 0, UINT64_MAX, &s->since) != 0) {
            *why = "since must be a whole number (the seq of the last event received)";
            return -1;
        }
        s->has_since = 1;
    }
    if (has_epoch) {
        size_t n = strlen(epoch);
        for (size_t i = 0; i < n; i++)
            if (epoch[i] < 0x21 || epoch[i] > 0x7e)
                n = 0;
        if (n == 0 || n > EVENT_EPOCH_MAX) {
            *why = "epoch must be the epoch string from the hello frame";
            return -1;
        }
        s->resume_epoch = strdup(epoch);
        if (!s->resume_epoch) {
            *why = "out of memory";
            return -1;
        }
    }
    return 0;
}

int
gw_session_established(gateway_t *gw, struct lws *wsi, gw_session_t *s, char *uid)
{
    memset(s, 0, sizeof *s);
    s->wsi = wsi;
    s->id = ++gw->next_session_id;
    s->state = GW_S_WAIT_CONFIRM;
    s->connected_ms = clock_wall_ms();
    gw->nsessions++;
    if (gw_keepalive_add(gw, s, clock_mono_ms()) != 0) {
        gw_session_fail(gw, s, GW_E_INTERNAL, NULL);
        return -1;
    }
    gw->stats.connections_total++;

    char peer[64] = "?", path[256] = "";
    uid[0] = '\0';
    lws_get_peer_simple(wsi, peer, sizeof peer);
    if (lws_hdr_copy(wsi, path, sizeof path, WSI_TOKEN_GET_URI) < 0)
        path[0] = '\0';
    int routed = gw_http_ws_user(path, uid) == 0;
    log_debug(&gw->log, "accepted conn=%u user=%s from %s", s->id, routed ? uid : "?", peer);

    if (gw->stopping || !routed) { /* confirm_upgrade let only the route through */
        log_info(&gw->log, "rejected conn=%u from %s: %s", s->id, peer,
                 gw->stopping ? "shutting down (1001)" : "no such route (1008)");
        gw_session_fail(gw, s, gw->stopping ? GW_E_SHUTDOWN : GW_E_NO_ROUTE, NULL);
        return -1;
    }
    jwt_claims_t claims;
    jwt_status_t st = gw_http_verify_token(gw, wsi, &claims);
    if (st != JWT_OK) {
        gw->stats.auth_failures++;
        log_info(&gw->log, "rejected conn=%u user=%s from %s: %s (4401)", s->id, uid, peer,
                 jwt_status_message(st));
        gw_session_fail(gw, s, GW_E_UNAUTHORIZED, jwt_status_message(st));
        return -1;
    }
    if (strcmp(claims.sub, uid) != 0) {
        gw->stats.auth_failures++;
        log_info(&gw->log, "rejected conn=%u user=%s from %s: token is for another user (4403)",
                 s->id, uid, peer);
        gw_session_fail(gw, s, GW_E_FORBIDDEN, NULL);
        return -1;
    }
    const char *why = NULL;
    if (s_resume_args(wsi, s, &why) != 0) {
        log_info(&gw->log, "rejected conn=%u user=%s from %s: %s (4400)", s->id, uid, peer, why);
        gw_session_fail(gw, s, GW_E_BAD_RESUME, why);
        return -1;
    }
    log_info(&gw->log, "authenticated conn=%u user=%s from %s%s", s->id, uid, peer,
             s->has_since ? " (resuming)" : "");
    return 0;
}

/* ---------------------------------------------------------------- sync */

void
gw_session_wait(gateway_t *gw, gw_session_t *s)
{
    s->state = GW_S_WAIT_CONFIRM;
    s->wait_since_ms = clock_mono_ms();
    s_pending_add(gw, s);
}

void
gw_session_sync(gateway_t *gw, gw_session_t *s)
{
    if (!s->user || s->state == GW_S_SYNC_WANTED || s->state == GW_S_CLOSING)
        return;
    /* The time limit counts from when the session began to wait: a retry
     * keeps it, a new sync (a first one, a gap, a relink) starts it. */
    if (!s_in_pending(gw, s))
        s->wait_since_ms = clock_mono_ms();
    s_dequeue(gw, s); /* it may have been woken: it writes after the sync */
    s->state = GW_S_SYNC_WANTED;
    s_pending_add(gw, s);
    s->queued = GW_Q_SYNC;
    DLIST_APPEND(gw->syncq, gw->syncq_tail, s, qprev, qnext);
}

void
gw_session_sync_sent(gateway_t *gw, gw_session_t *s, uint64_t req, uint64_t *since,
                     const char **epoch)
{
    gw_user_t *u = s->user;
    *since = 0;
    *epoch = NULL;
    if (s->gen == 0) {
        /* First sync: what the client asked for. */
        if (s->has_since && s->resume_epoch) {
            *since = s->since;
            *epoch = s->resume_epoch;
        }
    }
    else if (s->gen == u->gen && u->epoch_len) {
        /* A gap (or a relink): replay what this session has not seen. */
        *since = s->last_seq;
        *epoch = u->epoch;
    }
    /* else the epoch changed: a snapshot of the new one. */
    s->state = GW_S_SYNCING;
    s->req = req;
    s->req_sent_ms = clock_mono_ms();
    gw->stats.syncs++;
}

void
gw_session_synced(gateway_t *gw, gw_session_t *s, gw_batch_t *batch)
{
    gw_user_t *u = s->user;
    s_pending_remove(gw, s);
    s->req = 0;
    gw_batch_free(&s->batch);
    if (s->gen != u->gen) {
        /* A new hello: first sync, or the broker's state for this user
         * started over (seq counts from 1 again). */
        int resume = s->gen == 0 && s->has_since && s->resume_epoch &&
                     strcmp(s->resume_epoch, u->epoch) == 0;
        s->last_seq = resume ? s->since : 0;
        s->gen = u->gen;
        gw_frame_unref(&s->ctl);
        s->ctl = gw_frame_ref(u->hello);
    }
    s->batch = batch;
    s->state = GW_S_LIVE;
    lws_callback_on_writable(s->wsi);
}

void
gw_session_check_pending(gateway_t *gw, int64_t now_ms)
{
    gw_session_t *s = gw->pending, *next;
    for (; s; s = next) {
        next = s->pnext;
        if (now_ms - s->wait_since_ms >= GW_SYNC_GIVE_UP_MS) {
            gw->stats.sync_timeouts++;
            log_warn(&gw->log, "conn=%u user=%s: no answer from the broker, closing (4503)", s->id,
                     s->user ? s->user->id : "?");
            gw_session_fail(gw, s, GW_E_UNAVAILABLE, NULL);
        }
        else if (s->state == GW_S_SYNCING && now_ms - s->req_sent_ms >= GW_SYNC_RETRY_MS)
            gw_session_sync(gw, s);
    }
}

void
gw_session_resend_syncs(gateway_t *gw)
{
    for (gw_session_t *s = gw->pending; s; s = s->pnext)
        if (s->state == GW_S_SYNCING)
            gw_session_sync(gw, s);
}

/* ---------------------------------------------------------------- receive */

/*  A whole client message. */
static void
s_on_message(gateway_t *gw, struct lws *wsi, gw_session_t *s, const char *in, size_t len)
{
    json_tok_t toks[16];
    int n = json_parse(in, len, toks, 16, 4);
    int t = n > 0 && toks[0].type == JSON_OBJECT ? json_object_get(in, toks, 0, "type") : -1;
    if (t > 0 && toks[t].type == JSON_STRING && json_string_eq(in, &toks[t], "ping")) {
        if (s->pongs < S_PONGS_MAX)
            s->pongs++;
        lws_callback_on_writable(wsi);
        return;
    }
    if (t > 0 && toks[t].type == JSON_STRING && json_string_eq(in, &toks[t], "cancel")) {
        int id = json_object_get(in, toks, 0, "task_id");
        char task[EVENT_TASK_ID_MAX + 1];
        int tlen = id > 0 && toks[id].type == JSON_STRING
                       ? json_string_copy(in, &toks[id], task, sizeof task)
                       : -1;
        if (tlen > 0) {
            gw_jobs_cancel(gw, s, task, (size_t)tlen);
            return;
        }
    }
    if (!s->ctl) {
        const gw_error_info_t *e = gw_error_info(GW_E_BAD_MESSAGE);
        s->ctl = gw_frame_error(e->code, e->sentence);
        lws_callback_on_writable(wsi);
    }
}

int
gw_session_receive(gateway_t *gw, struct lws *wsi, gw_session_t *s, const void *in, size_t len)
{
    if (s->state == GW_S_CLOSING)
        return 0;
    gw_keepalive_seen(gw, s, clock_mono_ms());
    if (lws_frame_is_binary(wsi)) {
        gw_session_fail(gw, s, GW_E_BINARY, NULL);
        return 0;
    }
    /* lws's receive buffer is small (browsers send a ping now and then):
     * a bigger message, or one the client fragmented, arrives in pieces,
     * gathered here up to the limit. */
    int last = lws_is_final_fragment(wsi) && lws_remaining_packet_payload(wsi) == 0;
    if (last && !s->rx) {
        if (len > GW_CLIENT_MSG_MAX)
            gw_session_fail(gw, s, GW_E_TOO_BIG, NULL);
        else
            s_on_message(gw, wsi, s, in, len);
        return 0;
    }
    if (len > (size_t)GW_CLIENT_MSG_MAX - s->rx_len) {
        free(s->rx);
        s->rx = NULL;
        s->rx_len = 0;
        gw_session_fail(gw, s, GW_E_TOO_BIG, NULL);
        return 0;
    }
    if (!s->rx && !(s->rx = malloc(GW_CLIENT_MSG_MAX))) {
        gw_session_fail(gw, s, GW_E_INTERNAL, NULL);
        return 0;
    }
    memcpy(s->rx + s->rx_len, in, len);
    s->rx_len = (uint16_t)(s->rx_len + len);
    if (last) {
        s_on_message(gw, wsi, s, s->rx, s->rx_len);
        free(s->rx);
        s->rx = NULL;
        s->rx_len = 0;
    }
    return 0;
}

/* ---------------------------------------------------------------- write */

/*  The next frame for a LIVE session from its batch or the ring, with a
 *  reference the caller drops, or NULL (caught up, or it started a resync
 *  or was failed). */
static gw_frame_t *
s_next_frame(gateway_t *gw, gw_session_t *s)
{
    gw_user_t *u = s->user;
    while (s->batch) {
        gw_batch_t *b = s->batch;
        if (b->pos < b->count) {
            gw_frame_t *f = b->frames[b->pos++];
            if (f->seq > s->last_seq)
                return gw_frame_ref(f);
            continue;
        }
        if (b->seq > s->last_seq)
            s->last_seq = b->seq;
        gw_batch_free(&s->batch);
    }
    gw_frame_t *f = NULL;
    switch (gw_ring_next(&u->ring, &s->cursor, s->gen, s->last_seq, &f)) {
    case GW_RING_FRAME:
        return f;
    case GW_RING_END:
        return NULL;
    case GW_RING_LOST:
        gw->stats.slow_consumers++;
        log_warn(&gw->log, "conn=%u user=%s: too slow to keep up, closing (4429)", s->id, u->id);
        gw_session_fail(gw, s, GW_E_SLOW, NULL);
        return NULL;
    case GW_RING_GAP:
        log_info(&gw->log, "conn=%u user=%s: gap after seq %llu, replaying", s->id, u->id,
                 (unsigned long long)s->last_seq);
        gw_session_sync(gw, s); /* and come back to this frame afterwards */
        return NULL;
    case GW_RING_EPOCH:
        gw_session_sync(gw, s); /* the new epoch's state */
        return NULL;
    }
    return NULL;
}

/*  The next frame to send, with a reference the caller drops: a control
 *  frame, an owed pong, then (live sessions) the batch and the ring. NULL
 *  when there is nothing to send now. */
static gw_frame_t *
s_take(gateway_t *gw, gw_session_t *s)
{
    for (;;) {
        if (s->ctl) {
            gw_frame_t *f = s->ctl;
            s->ctl = NULL;
            return f;
        }
        if (s->state == GW_S_CLOSING)
            return NULL;
        if (s->pongs) {
            s->pongs--;
            return gw_frame_ref(gw->pong);
        }
        if (s->state != GW_S_LIVE)
            return NULL;
        gw_frame_t *f = s_next_frame(gw, s);
        if (f) {
            if (f->kind == GW_FRAME_EVENT)
                s->last_seq = f->seq;
            return f;
        }
        if (!s->ctl)
            return NULL; /* caught up, or a resync started */
        /* s_next_frame failed the session: its error frame goes next */
    }
}

/*  Appends f as a complete unmasked text frame (RFC 6455 5.2) to b. */
static void
s_append_ws_frame(buf_t *b, const gw_frame_t *f)
{
    unsigned char h[10];
    size_t n = 2;
    h[0] = 0x81; /* FIN, text */
    if (f->len < 126)
        h[1] = (unsigned char)f->len;
    else if (f->len <= 0xffff) {
        h[1] = 126;
        h[2] = (unsigned char)(f->len >> 8);
        h[3] = (unsigned char)f->len;
        n = 4;
    }
    else {
        h[1] = 127;
        for (int i = 0; i < 8; i++)
            h[2 + i] = (unsigned char)((uint64_t)f->len >> (56 - 8 * i));
        n = 10;
    }
    buf_append(b, h, n);
    buf_append(b, f->buf + LWS_PRE, f->len);
}

/*  Writes frames: one alone as it is (lws frames it in the headroom, no
 *  copy), several as one send() of complete frames, so a burst or a
 *  snapshot costs one system call, not one per frame. Returns 0, or -1 if
 *  the connection failed. */
static int
s_write_frames(gateway_t *gw, struct lws *wsi, gw_frame_t **frames, size_t n)
{
    if (n == 1)
        return lws_write(wsi, gw_frame_payload(frames[0]), frames[0]->len, LWS_WRITE_TEXT) <
                       (int)frames[0]->len
                   ? -1
                   : 0;
    buf_t *b = &gw->scratch;
    buf_reset(b);
    if (buf_reserve(b, LWS_PRE) != 0)
        return -1;
    b->len = LWS_PRE;
    for (size_t i = 0; i < n; i++)
        s_append_ws_frame(b, frames[i]);
    if (!buf_ok(b))
        return -1;
    size_t len = b->len - LWS_PRE;
    /* LWS_WRITE_RAW on a WebSocket sends the bytes as they are; a partial
     * send is kept and finished by lws before the next WRITEABLE. */
    return lws_write(wsi, (unsigned char *)b->data + LWS_PRE, len, LWS_WRITE_RAW) < (int)len ? -1
                                                                                             : 0;
}

/*  Sends what is ready (up to a budget) in one write. Returns 1 if the
 *  budget stopped it or an error frame is out (more to write: ask for
 *  WRITEABLE), 0 when done, -1 if the connection failed. */
static int
s_write_ready(gateway_t *gw, struct lws *wsi, gw_session_t *s)
{
    gw_frame_t *frames[S_WRITES_PER_CALLBACK];
    size_t n = 0, bytes = 0;
    while (n < S_WRITES_PER_CALLBACK && bytes < S_WRITE_BYTES) {
        gw_frame_t *f = s_take(gw, s);
        if (!f)
            break;
        frames[n++] = f;
        bytes += f->len;
        if (f->kind == GW_FRAME_EVENT)
            gw->stats.frames_sent++;
        if (s->state == GW_S_CLOSING)
            break; /* the error frame is the last one */
    }
    int rc = n ? s_write_frames(gw, wsi, frames, n) : 0;
    for (size_t i = 0; i < n; i++)
        gw_frame_unref(&frames[i]);
    if (rc != 0)
        return -1;
    return n == S_WRITES_PER_CALLBACK || bytes >= S_WRITE_BYTES || s->state == GW_S_CLOSING;
}

int
gw_session_writeable(gateway_t *gw, struct lws *wsi, gw_session_t *s)
{
    if (s->close_sent)
        return 0; /* lws waits for the client's close: nothing more */
    if (!s->ctl && s->state == GW_S_CLOSING) {
        /* The error frame has left (lws calls WRITEABLE only once what it
         * holds is sent): now the close. With a reason set, returning -1
         * makes lws send the close frame and wait for the client's before
         * it closes TCP (RFC 6455 7.1.1), which lets a proxy in between
         * forward the client's close frame instead of writing into a
         * connection we already ended. lws would wait 5 s; keepalive.c
         * drops a client that does not answer after GW_CLOSE_ACK_MS. A
         * WRITEABLE that comes meanwhile must not return -1 again: that
         * would close TCP at once. */
        lws_close_reason(wsi, (enum lws_close_status)s->close_code, NULL, 0);
        s->close_sent = 1;
        gw_keepalive_closing(gw, s, clock_mono_ms() + GW_CLOSE_ACK_MS);
        return -1;
    }
    if (s->ping_due && s->state != GW_S_CLOSING) {
        /* A ping on its own (one lws_write per WRITEABLE), then the rest.
         * It carries a payload: lws 4.1 tells us of no empty pong. */
        unsigned char ping[LWS_PRE + 2] = {[LWS_PRE] = 't', [LWS_PRE + 1] = 'c'};
        s->ping_due = 0;
        if (lws_write(wsi, ping + LWS_PRE, 2, LWS_WRITE_PING) < 0)
            return -1;
        lws_callback_on_writable(wsi);
        return 0;
    }
    int rc = s_write_ready(gw, wsi, s);
    if (rc < 0)
        return -1;
    if (rc > 0)
        lws_callback_on_writable(wsi);
    return 0;
}

void
gw_session_ping(gateway_t *gw, gw_session_t *s)
{
    if (s->state == GW_S_CLOSING)
        return;
    s->ping_due = 1;
    lws_callback_on_writable(s->wsi);
}

void
gw_session_hang_up(gateway_t *gw, gw_session_t *s, int64_t silent_ms)
{
    log_info(&gw->log, "conn=%u: silent for %lld s after a ping, closing", s->id,
             (long long)(silent_ms / 1000));
    lws_set_timeout(s->wsi, PENDING_TIMEOUT_WS_PONG_CHECK_GET_PONG, LWS_TO_KILL_ASYNC);
}

void
gw_session_close_expired(gateway_t *gw, gw_session_t *s)
{
    log_info(&gw->log, "conn=%u: no close frame from the client within %d ms, dropped", s->id,
             GW_CLOSE_ACK_MS);
    lws_set_timeout(s->wsi, PENDING_TIMEOUT_CLOSE_ACK, LWS_TO_KILL_ASYNC);
}

void
gw_session_write_woken(gateway_t *gw)
{
    gw_session_t *s;
    while ((s = gw->wakeq) != NULL) {
        s_dequeue(gw, s);
        /* Straight away when only ring frames are due and lws holds
         * nothing unsent (a partial send lws keeps must go first: it
         * finishes it on EPOLLOUT). Control frames, and anything after a
         * failure, take the WRITEABLE path, where a close can follow. */
        int rc = 1;
        if (s->state == GW_S_LIVE && !s->ctl && !s->pongs && !s->batch && !s->ping_due &&
            !lws_partial_buffered(s->wsi))
            rc = s_write_ready(gw, s->wsi, s);
        if (rc < 0) /* the socket failed: lws closes it, not in its callback */
            lws_set_timeout(s->wsi, PENDING_TIMEOUT_CLOSE_SEND, LWS_TO_KILL_ASYNC);
        else if (rc > 0 || s->ctl)
            lws_callback_on_writable(s->wsi);
    }
}

void
gw_session_peer_closing(gateway_t *gw, gw_session_t *s)
{
    if (s->state == GW_S_CLOSING || !s->wsi)
        return;
    s_pending_remove(gw, s);
    s_dequeue(gw, s);
    if (s->user)
        gw_ring_park(&s->user->ring, &s->cursor);
    gw_batch_free(&s->batch);
    gw_frame_unref(&s->ctl);
    s->state = GW_S_CLOSING;
    s->close_code = LWS_CLOSE_STATUS_NORMAL;
    s->pongs = 0;
}

void
gw_session_closed(gateway_t *gw, gw_session_t *s)
{
    if (!s->wsi)
        return; /* never established */
    s_pending_remove(gw, s);
    s_dequeue(gw, s);
    gw_keepalive_remove(gw, s);
    gw_jobs_forget(gw, s);
    gw_batch_free(&s->batch);
    gw_frame_unref(&s->ctl);
    free(s->resume_epoch);
    s->resume_epoch = NULL;
    free(s->rx);
    s->rx = NULL;
    gw->nsessions--;
    log_info(&gw->log, "closed conn=%u", s->id);
    s->wsi = NULL;
}
