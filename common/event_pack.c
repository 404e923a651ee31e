/*  event_pack.c: the published form of an event (docs/protocol.md section
 *  2), written once per event straight into the memory that keeps it: the
 *  worker's fields without producer/pseq, ts always set, seq and epoch. */
#include <string.h>

#include "event.h"
#include "mpwrite.h"

/*  Encoded size of an unsigned integer (mp_put_uint). */
static size_t
s_uint_size(uint64_t v)
{
    return v < 128 ? 1 : v <= 0xff ? 2 : v <= 0xffff ? 3 : v <= 0xffffffffu ? 5 : 9;
}

static size_t
s_int_size(int64_t v)
{
    if (v >= 0)
        return s_uint_size((uint64_t)v);
    return v >= -32 ? 1 : v >= INT8_MIN ? 2 : v >= INT16_MIN ? 3 : v >= INT32_MIN ? 5 : 9;
}

/*  A float progress that a float 32 holds exactly is packed as one. */
static int
s_progress_is_f32(const mp_value_t *v)
{
    return v->type == MP_FLOAT && (double)(float)v->v.f == v->v.f;
}

#define S_KEY(lit) mp_size_str(sizeof(lit) - 1)

size_t
event_published_size(const event_t *ev, int64_t ts, uint64_t seq, size_t epoch_len)
{
    size_t n = 1 + S_KEY("task_id") + mp_size_str(ev->task_id.len) + S_KEY("user_id") +
               mp_size_str(ev->user_id.len) + S_KEY("status") +
               mp_size_str(strlen(event_status_name(ev->status))) + S_KEY("ts") +
               s_int_size(ev->has_ts ? ev->ts : ts) + S_KEY("seq") + s_uint_size(seq) +
               S_KEY("epoch") + mp_size_str(epoch_len);
    if (ev->has_progress) {
        const mp_value_t *v = &ev->progress;
        n += S_KEY("progress") + (v->type == MP_UINT  ? s_uint_size(v->v.u)
                                  : v->type == MP_INT ? s_int_size(v->v.i)
                                  : s_progress_is_f32(v) ? 5
                                                         : 9);
    }
    if (ev->has_message)
        n += S_KEY("message") + mp_size_str(ev->message.len);
    if (ev->data)
        n += S_KEY("data") + ev->data_len;
    return n;
}

static uint8_t *
s_put_float(uint8_t *p, const mp_value_t *v)
{
    if (s_progress_is_f32(v)) {
        float f = (float)v->v.f;
        uint32_t bits;
        memcpy(&bits, &f, sizeof bits);
        return mp_put_be(p, 0xca, bits, 4);
    }
    uint64_t bits;
    memcpy(&bits, &v->v.f, sizeof bits);
    return mp_put_be(p, 0xcb, bits, 8);
}

size_t
event_put_published(const event_t *ev, int64_t ts, uint64_t seq, const char *epoch,
                    size_t epoch_len, uint8_t *out)
{
    uint8_t *p = out;
    /* task_id, user_id, status, ts, seq, epoch + the optional ones */
    p = mp_put_fixmap(p, 6 + (ev->has_progress != 0) + (ev->has_message != 0) + (ev->data != NULL));
    p = mp_put_lit(p, "task_id");
    p = mp_put_str(p, ev->task_id.p, ev->task_id.len);
    p = mp_put_lit(p, "user_id");
    p = mp_put_str(p, ev->user_id.p, ev->user_id.len);
    p = mp_put_lit(p, "status");
    const char *status = event_status_name(ev->status);
    p = mp_put_str(p, status, strlen(status));
    if (ev->has_progress) {
        p = mp_put_lit(p, "progress");
        const mp_value_t *v = &ev->progress;
        p = v->type == MP_UINT  ? mp_put_uint(p, v->v.u)
            : v->type == MP_INT ? mp_put_int(p, v->v.i)
                                : s_put_float(p, v);
    }
    if (ev->has_message) {
        p = mp_put_lit(p, "message");
        p = mp_put_str(p, ev->message.p, ev->message.len);
    }
    if (ev->data) {
        p = mp_put_lit(p, "data");
        memcpy(p, ev->data, ev->data_len);
        p += ev->data_len;
    }
    p = mp_put_lit(p, "ts");
    p = mp_put_int(p, ev->has_ts ? ev->ts : ts);
    p = mp_put_lit(p, "seq");
    p = mp_put_uint(p, seq);
    p = mp_put_lit(p, "epoch");
    p = mp_put_str(p, epoch, epoch_len);
    return (size_t)(p - out);
}

int
event_pack_published(const event_t *ev, int64_t ts, uint64_t seq, const char *epoch,
                     size_t epoch_len, buf_t *out)
{
    size_t n = event_published_size(ev, ts, seq, epoch_len);
    if (buf_reserve(out, n) != 0)
        return -1;
    out->len += event_put_published(ev, ts, seq, epoch, epoch_len, (uint8_t *)out->data + out->len);
    return 0;
}
