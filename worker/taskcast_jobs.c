/*  taskcast_jobs.c: tc_submit() and tc_cancel() over a DEALER to the
 *  broker's jobs endpoint, with the lazy pirate's resend (see the header). */
#include "taskcast_jobs.h"

#include <errno.h>
#include <msgpack.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "buf.h"
#include "clock.h"
#include "mpread.h"
#include "taskcast_link.h"
#include "taskcast_pack.h"
#include "wire.h"
#include "zmsg.h"

#define S_DEFAULT_ENDPOINT   "tcp://127.0.0.1:5558"
#define S_DEFAULT_TIMEOUT_MS 2000
#define S_DEFAULT_RETRIES    5
#define S_TIMEOUT            1 /* internal: this attempt got no answer */

struct tc_jobs {
    tc_link_t link; /* the DEALER (taskcast_link.c) */
    char producer[TC_PRODUCER_MAX + 1];
    int timeout_ms, retries;
    uint64_t pseq;
    buf_t out;
};

int
tc_jobs_new(tc_jobs_t **out, const tc_options_t *opts)
{
    static const tc_options_t defaults = {0};
    if (!out)
        return TC_EINVAL;
    *out = NULL;
    if (!opts)
        opts = &defaults;
    if (opts->timeout_ms < 0 || opts->retries < -1 ||
        (opts->producer && !tc_producer_valid(opts->producer)))
        return TC_EINVAL;
    if (sodium_init() < 0) {
        errno = ENOSYS;
        return TC_ESYS;
    }
    const char *endpoint = opts->endpoint;
    if (!endpoint && (!(endpoint = getenv("TASKCAST_JOBS")) || !*endpoint))
        endpoint = S_DEFAULT_ENDPOINT;
    tc_jobs_t *self = calloc(1, sizeof *self);
    if (!self)
        return TC_ESYS;
    buf_init(&self->out);
    self->timeout_ms = opts->timeout_ms ? opts->timeout_ms : S_DEFAULT_TIMEOUT_MS;
    self->retries = opts->retries == 0 ? S_DEFAULT_RETRIES : opts->retries < 0 ? 0 : opts->retries;
    if (opts->producer)
        strcpy(self->producer, opts->producer); /* length checked above */
    else
        tc_link_random_id(self->producer, sizeof self->producer, "s-");
    int rc = tc_link_init(&self->link, endpoint);
    if (rc != TC_OK) {
        tc_jobs_destroy(&self);
        return rc;
    }
    *out = self;
    return TC_OK;
}

void
tc_jobs_destroy(tc_jobs_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    tc_jobs_t *self = *self_p;
    tc_link_fini(&self->link);
    buf_free(&self->out);
    free(self);
    *self_p = NULL;
}

/*  Reads an answer; 0, or -1 if it is not one. *pseq_out: its pseq or 0. */
static int
s_parse(const void *buf, size_t len, tc_job_reply_t *r, uint64_t *pseq_out)
{
    memset(r, 0, sizeof *r);
    *pseq_out = 0;
    mp_reader_t rd;
    mp_value_t top, k, v;
    int has_ok = 0;
    mp_reader_init(&rd, buf, len);
    if (mp_read(&rd, &top) != 0 || top.type != MP_MAP)
        return -1;
    for (uint32_t i = 0; i < top.v.n; i++) {
        if (mp_read_pair(&rd, &k, &v, 16) != 0)
            return -1;
        if (mp_str_eq(&k, "ok") && v.type == MP_BOOL)
            r->ok = v.v.b, has_ok = 1;
        else if (mp_str_eq(&k, "task_id") && v.type == MP_STR)
            tc_copy_text(r->task_id, sizeof r->task_id, &v);
        else if (mp_str_eq(&k, "was") && v.type == MP_STR)
            tc_copy_text(r->was, sizeof r->was, &v);
        else if (mp_str_eq(&k, "error") && v.type == MP_STR)
            tc_copy_text(r->error, sizeof r->error, &v);
        else if (mp_str_eq(&k, "detail") && v.type == MP_STR)
            tc_copy_text(r->detail, sizeof r->detail, &v);
        else if (mp_str_eq(&k, "duplicate") && v.type == MP_BOOL)
            r->duplicate = v.v.b;
        else if (mp_str_eq(&k, "pseq") && v.type == MP_UINT)
            *pseq_out = v.v.u;
    }
    return has_ok ? 0 : -1;
}

/*  Sends self->out and waits for its answer (pseq: 0 for none), resending
 *  on a fresh socket after each timeout. */
static int
s_request(tc_jobs_t *self, uint64_t pseq, tc_job_reply_t *reply)
{
    for (int attempt = 0;; attempt++) {
        if (!self->link.sock) {
            int rc = tc_link_open(&self->link);
            if (rc != TC_OK)
                return rc;
        }
        if (zmq_send(self->link.sock, self->out.data, self->out.len, ZMQ_DONTWAIT) < 0 &&
            errno != EAGAIN && errno != EINTR) {
            tc_link_close(&self->link);
            return TC_ESYS;
        }
        int64_t deadline = clock_mono_ms() + self->timeout_ms;
        int rc = S_TIMEOUT;
        while (rc == S_TIMEOUT) {
            int64_t left = deadline - clock_mono_ms();
            if (left <= 0)
                break;
            zmq_pollitem_t item = {.socket = self->link.sock, .events = ZMQ_POLLIN};
            int n = zmq_poll(&item, 1, (long)left);
            if (n < 0 && errno == EINTR)
                continue;
            if (n < 0) {
                rc = TC_ESYS;
                break;
            }
            if (n == 0)
                continue;
            zmsg_t msg;
            if (zmsg_recv(&msg, self->link.sock, ZMQ_DONTWAIT) != 0)
                continue;
            uint64_t got = 0;
            int ok = msg.count == 1 && !msg.truncated &&
                     s_parse(zmsg_data(&msg, 0), zmsg_size(&msg, 0), reply, &got) == 0;
            zmsg_close(&msg);
            if (!ok)
                rc = TC_EPROTO;
            else if (!pseq || !got || got == pseq)
                rc = reply->ok ? TC_OK : TC_EREJECTED;
        }
        if (rc != S_TIMEOUT) {
            if (rc == TC_ESYS || rc == TC_EPROTO)
                tc_link_close(&self->link);
            return rc;
        }
        tc_link_close(&self->link); /* lazy pirate: a fresh socket, the same bytes */
        if (attempt >= self->retries)
            return TC_ETIMEOUT;
    }
}

int
tc_submit(tc_jobs_t *self, const tc_job_t *job, tc_job_reply_t *reply)
{
    tc_job_reply_t local;
    if (!reply)
        reply = &local;
    memset(reply, 0, sizeof *reply);
    if (!self || !job || !job->kind || !*job->kind || !job->user_id || !*job->user_id ||
        (job->args_len && !job->args) || job->max_retries < -1)
        return TC_EINVAL;
    uint64_t pseq = ++self->pseq;
    buf_reset(&self->out);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &self->out, buf_msgpack_write);
    msgpack_pack_map(&pk, 5 + (job->task_id ? 1 : 0) + (job->args ? 1 : 0) +
                              (job->timeout_s ? 1 : 0) + (job->max_retries >= 0 ? 1 : 0));
    wire_pack_kv_str(&pk, "type", "submit", 6);
    wire_pack_kv_str(&pk, "kind", job->kind, strlen(job->kind));
    wire_pack_kv_str(&pk, "user_id", job->user_id, strlen(job->user_id));
    wire_pack_kv_str(&pk, "producer", self->producer, strlen(self->producer));
    wire_pack_kv_u64(&pk, "pseq", pseq);
    if (job->task_id)
        wire_pack_kv_str(&pk, "task_id", job->task_id, strlen(job->task_id));
    if (job->args) {
        wire_pack_str(&pk, "args");
        pk.callback(pk.data, job->args, job->args_len);
    }
    if (job->timeout_s)
        wire_pack_kv_u64(&pk, "timeout_s", job->timeout_s);
    if (job->max_retries >= 0)
        wire_pack_kv_u64(&pk, "max_retries", (uint64_t)job->max_retries);
    if (!buf_ok(&self->out)) {
        errno = ENOMEM;
        return TC_ESYS;
    }
    return s_request(self, pseq, reply);
}

int
tc_cancel(tc_jobs_t *self, const char *task_id, const char *user_id, tc_job_reply_t *reply)
{
    tc_job_reply_t local;
    if (!reply)
        reply = &local;
    memset(reply, 0, sizeof *reply);
    if (!self || !task_id || !*task_id || !user_id || !*user_id)
        return TC_EINVAL;
    buf_reset(&self->out);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &self->out, buf_msgpack_write);
    msgpack_pack_map(&pk, 3);
    wire_pack_kv_str(&pk, "type", "cancel", 6);
    wire_pack_kv_str(&pk, "task_id", task_id, strlen(task_id));
    wire_pack_kv_str(&pk, "user_id", user_id, strlen(user_id));
    if (!buf_ok(&self->out)) {
        errno = ENOMEM;
        return TC_ESYS;
    }
    return s_request(self, 0, reply);
}
