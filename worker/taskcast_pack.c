/*  taskcast_pack.c: argument checks and the request encoder. */
#include "taskcast_pack.h"

#include <math.h>
#include <msgpack.h>
#include <string.h>

#include "mpread.h"
#include "wire.h"

static const char *const s_statuses[] = {"queued", "running", "succeeded", "failed", "cancelled"};

int
tc_status_valid(const char *status)
{
    for (size_t i = 0; i < sizeof s_statuses / sizeof s_statuses[0]; i++)
        if (strcmp(status, s_statuses[i]) == 0)
            return 1;
    return 0;
}

int
tc_producer_valid(const char *text)
{
    size_t len = text ? strlen(text) : 0;
    if (len == 0 || len > TC_PRODUCER_MAX)
        return 0;
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)text[i] < 0x20 || (unsigned char)text[i] > 0x7e)
            return 0;
    return 1;
}

int
tc_event_check(const tc_event_t *ev)
{
    if (!ev || !ev->task_id || !*ev->task_id || !ev->user_id || !*ev->user_id || !ev->status)
        return -1;
    if (!tc_status_valid(ev->status))
        return -1;
    if (ev->has_progress && (!isfinite(ev->progress) || ev->progress < 0 || ev->progress > 100))
        return -1;
    if (ev->ts < 0)
        return -1;
    if (!ev->data && ev->data_len != 0)
        return -1;
    /* Malformed data would shift every key after it: catch it here. */
    if (ev->data && !mp_check(ev->data, ev->data_len, TC_DATA_DEPTH_MAX))
        return -1;
    return 0;
}

int
tc_pack_event(const tc_event_t *ev, const char *producer, uint64_t pseq, buf_t *out)
{
    msgpack_packer pk;
    msgpack_packer_init(&pk, out, buf_msgpack_write);
    size_t n =
        5 + (ev->has_progress != 0) + (ev->message != NULL) + (ev->data != NULL) + (ev->ts != 0);
    msgpack_pack_map(&pk, n);
    wire_pack_str(&pk, "task_id");
    wire_pack_str(&pk, ev->task_id);
    wire_pack_str(&pk, "user_id");
    wire_pack_str(&pk, ev->user_id);
    wire_pack_str(&pk, "status");
    wire_pack_str(&pk, ev->status);
    if (ev->has_progress) {
        wire_pack_str(&pk, "progress");
        /* 0..100 was checked: a whole number fits an integer exactly. */
        if (ev->progress == (double)(int)ev->progress)
            msgpack_pack_uint64(&pk, (uint64_t)(int)ev->progress);
        else
            msgpack_pack_double(&pk, ev->progress);
    }
    if (ev->message) {
        wire_pack_str(&pk, "message");
        wire_pack_str(&pk, ev->message);
    }
    if (ev->data) {
        wire_pack_str(&pk, "data");
        /* Already msgpack: appended as is (the packer does not buffer). */
        buf_append(out, ev->data, ev->data_len);
    }
    if (ev->ts != 0) {
        wire_pack_str(&pk, "ts");
        msgpack_pack_int64(&pk, ev->ts);
    }
    wire_pack_str(&pk, "producer");
    wire_pack_str(&pk, producer);
    wire_pack_str(&pk, "pseq");
    msgpack_pack_uint64(&pk, pseq);
    return buf_ok(out) ? 0 : -1;
}
