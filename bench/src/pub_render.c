/*  pub_render.c: what tc-pub sends and how it reads taskcast's answers
 *  (and matches them to their events: the pseq ring).
 *
 *  The same event two ways: the msgpack map a worker sends to taskcast's
 *  broker (docs/protocol.md section 1), and the JSON frame text the Redis
 *  and Nchan peers forward verbatim (the shape taskcast's gateway renders).
 */
#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mpread.h"
#include "pub.h"

void
pub_render_json(pub_worker_t *w, const pub_ev_t *ev, buf_t *out)
{
    buf_printf(out,
               "{\"type\":\"task\",\"seq\":%llu,\"task_id\":\"t%u\",\"status\":\"running\","
               "\"progress\":50,\"data\":{\"bt\":%lld,\"pad\":\"%s\"},\"ts\":%lld}",
               (unsigned long long)ev->useq, ev->task, (long long)ev->bt, w->pad,
               (long long)time(NULL) * 1000);
}

static void
s_pack_str(msgpack_packer *pk, const char *s, size_t len)
{
    msgpack_pack_str(pk, len);
    msgpack_pack_str_body(pk, s, len);
}

void
pub_render_msgpack(pub_worker_t *w, const pub_ev_t *ev, uint64_t pseq, buf_t *out)
{
    msgpack_packer pk;
    msgpack_packer_init(&pk, out, buf_msgpack_write);
    char task[16], user[16];
    int tlen = snprintf(task, sizeof task, "t%u", ev->task);
    int ulen = snprintf(user, sizeof user, "u%u", ev->user);
    msgpack_pack_map(&pk, 7);
    s_pack_str(&pk, "task_id", 7);
    s_pack_str(&pk, task, (size_t)tlen);
    s_pack_str(&pk, "user_id", 7);
    s_pack_str(&pk, user, (size_t)ulen);
    s_pack_str(&pk, "status", 6);
    s_pack_str(&pk, "running", 7);
    s_pack_str(&pk, "progress", 8);
    msgpack_pack_int(&pk, 50);
    s_pack_str(&pk, "data", 4);
    msgpack_pack_map(&pk, 2);
    s_pack_str(&pk, "bt", 2);
    msgpack_pack_int64(&pk, ev->bt);
    s_pack_str(&pk, "pad", 3);
    s_pack_str(&pk, w->pad, w->cfg->payload);
    s_pack_str(&pk, "producer", 8);
    s_pack_str(&pk, w->producer, strlen(w->producer));
    s_pack_str(&pk, "pseq", 4);
    msgpack_pack_uint64(&pk, pseq);
}

int
pub_parse_answer(const void *data, size_t len, uint64_t *pseq, char *error, size_t errlen)
{
    mp_reader_t r;
    mp_value_t v, key, val;
    mp_reader_init(&r, data, len);
    int ok = 0;
    *pseq = 0;
    snprintf(error, errlen, "malformed_answer");
    if (mp_read(&r, &v) != 0 || v.type != MP_MAP)
        return 0;
    for (uint32_t i = 0; i < v.v.n && mp_read_pair(&r, &key, &val, 4) == 0; i++) {
        if (mp_str_eq(&key, "ok") && val.type == MP_BOOL)
            ok = val.v.b;
        else if (mp_str_eq(&key, "pseq") && val.type == MP_UINT)
            *pseq = val.v.u;
        else if (mp_str_eq(&key, "error") && val.type == MP_STR)
            snprintf(error, errlen, "%.*s", (int)val.v.s.len, val.v.s.p);
    }
    return ok;
}

int
pub_due_init(pub_due_t *d, uint32_t window)
{
    uint64_t ring = 1;
    while (ring < (uint64_t)window * 2)
        ring <<= 1;
    d->mask = ring - 1;
    d->pseq = 0;
    d->bt = calloc(ring, sizeof *d->bt);
    return d->bt ? 0 : -1;
}

uint64_t
pub_due_push(pub_due_t *d, int64_t bt)
{
    d->pseq++;
    d->bt[d->pseq & d->mask] = bt;
    return d->pseq;
}

int64_t
pub_due_get(const pub_due_t *d, uint64_t pseq)
{
    return pseq && pseq <= d->pseq ? d->bt[pseq & d->mask] : procs_now_ns();
}

void
pub_due_free(pub_due_t *d)
{
    free(d->bt);
    d->bt = NULL;
}
