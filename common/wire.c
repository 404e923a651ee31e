/*  wire.c: broker <-> gateway messages (wire.h). */
#include <string.h>

#include "mpread.h"
#include "wire.h"

#define S_DEPTH 4 /* nesting skipped inside a control message */

void
wire_pack_strn(msgpack_packer *pk, const char *s, size_t n)
{
    msgpack_pack_str(pk, n);
    msgpack_pack_str_body(pk, s, n);
}

void
wire_pack_str(msgpack_packer *pk, const char *s)
{
    wire_pack_strn(pk, s, strlen(s));
}

void
wire_pack_kv_u64(msgpack_packer *pk, const char *key, uint64_t v)
{
    wire_pack_str(pk, key);
    msgpack_pack_uint64(pk, v);
}

void
wire_pack_kv_str(msgpack_packer *pk, const char *key, const char *s, size_t n)
{
    wire_pack_str(pk, key);
    wire_pack_strn(pk, s, n);
}

static void
s_packer(msgpack_packer *pk, buf_t *out)
{
    msgpack_packer_init(pk, out, buf_msgpack_write);
}

static event_text_t
s_text(const mp_value_t *v)
{
    return (event_text_t){v->v.s.p, v->v.s.len};
}

/* ---------------------------------------------------------------- control */

void
wire_pack_control(buf_t *out, const char *epoch, const char *boot, int64_t ts_ms)
{
    msgpack_packer pk;
    s_packer(&pk, out);
    msgpack_pack_map(&pk, boot ? 3 : 1);
    wire_pack_kv_str(&pk, "epoch", epoch, strlen(epoch));
    if (boot) {
        wire_pack_kv_str(&pk, "boot", boot, strlen(boot));
        wire_pack_str(&pk, "ts");
        msgpack_pack_int64(&pk, ts_ms);
    }
}

static int
s_short_str(const mp_value_t *v)
{
    return v->type == MP_STR && v->v.s.len > 0 && v->v.s.len <= EVENT_EPOCH_MAX;
}

int
wire_read_control(const void *data, size_t len, wire_control_t *c)
{
    memset(c, 0, sizeof *c);
    mp_reader_t r;
    mp_value_t map, key, val;
    mp_reader_init(&r, data, len);
    if (mp_read(&r, &map) != 0 || map.type != MP_MAP)
        return -1;
    for (uint32_t i = 0; i < map.v.n; i++) {
        if (mp_read_pair(&r, &key, &val, S_DEPTH) != 0)
            return -1;
        if (mp_str_eq(&key, "epoch")) {
            if (!s_short_str(&val))
                return -1;
            c->epoch = s_text(&val);
        }
        else if (mp_str_eq(&key, "boot")) {
            if (!s_short_str(&val))
                return -1;
            c->boot = s_text(&val);
        }
        else if (mp_str_eq(&key, "ts") && (val.type == MP_UINT || val.type == MP_INT))
            c->ts = val.type == MP_UINT ? (int64_t)val.v.u : val.v.i;
    }
    return c->epoch.len ? 0 : -1;
}

/* ---------------------------------------------------------------- sync requests */

void
wire_pack_sync_req(buf_t *out, const wire_sync_req_t *r)
{
    msgpack_packer pk;
    s_packer(&pk, out);
    if (r->stats) {
        msgpack_pack_map(&pk, 2);
        wire_pack_kv_u64(&pk, "req", r->req);
        wire_pack_kv_str(&pk, "op", "stats", 5);
        return;
    }
    int resume = r->has_since && r->epoch.len;
    msgpack_pack_map(&pk, resume ? 4 : 2);
    wire_pack_kv_u64(&pk, "req", r->req);
    wire_pack_kv_str(&pk, "user_id", r->user_id.p, r->user_id.len);
    if (resume) {
        wire_pack_kv_u64(&pk, "since", r->since);
        wire_pack_kv_str(&pk, "epoch", r->epoch.p, r->epoch.len);
    }
}

int
wire_read_sync_req(const void *data, size_t len, wire_sync_req_t *r, int *has_req)
{
    memset(r, 0, sizeof *r);
    *has_req = 0;
    mp_reader_t rd;
    mp_value_t map, key, val;
    int has_user = 0;
    mp_reader_init(&rd, data, len);
    if (mp_read(&rd, &map) != 0 || map.type != MP_MAP)
        return -1;
    for (uint32_t i = 0; i < map.v.n; i++) {
        if (mp_read_pair(&rd, &key, &val, S_DEPTH) != 0)
            return -1;
        if (mp_str_eq(&key, "req") && val.type == MP_UINT) {
            r->req = val.v.u;
            *has_req = 1;
        }
        else if (mp_str_eq(&key, "user_id") && val.type == MP_STR) {
            r->user_id = s_text(&val);
            has_user = 1;
        }
        else if (mp_str_eq(&key, "since") && val.type == MP_UINT) {
            r->since = val.v.u;
            r->has_since = 1;
        }
        else if (mp_str_eq(&key, "epoch") && val.type == MP_STR)
            r->epoch = s_text(&val);
        else if (mp_str_eq(&key, "op") && mp_str_eq(&val, "stats"))
            r->stats = 1;
    }
    if (mp_reader_left(&rd) != 0 || !*has_req)
        return -1;
    if (r->stats)
        return 0;
    return has_user && event_user_id_valid(r->user_id.p, r->user_id.len) ? 0 : -1;
}

/* ---------------------------------------------------------------- sync answers */

void
wire_pack_sync_head(buf_t *out, const wire_sync_head_t *h)
{
    msgpack_packer pk;
    s_packer(&pk, out);
    msgpack_pack_map(&pk, 5);
    wire_pack_kv_u64(&pk, "req", h->req);
    wire_pack_kv_str(&pk, "user_id", h->user_id.p, h->user_id.len);
    wire_pack_kv_str(&pk, "epoch", h->epoch.p, h->epoch.len);
    wire_pack_kv_u64(&pk, "seq", h->seq);
    wire_pack_kv_str(&pk, "mode", h->replay ? "replay" : "snapshot", h->replay ? 6 : 8);
}

void
wire_pack_sync_error(buf_t *out, int has_req, uint64_t req, const char *sentence)
{
    msgpack_packer pk;
    s_packer(&pk, out);
    msgpack_pack_map(&pk, has_req ? 2 : 1);
    if (has_req)
        wire_pack_kv_u64(&pk, "req", req);
    wire_pack_kv_str(&pk, "error", sentence, strlen(sentence));
}

int
wire_read_sync_head(const void *data, size_t len, wire_sync_head_t *h)
{
    memset(h, 0, sizeof *h);
    mp_reader_t r;
    mp_value_t map, key, val;
    int has_req = 0, has_seq = 0;
    mp_reader_init(&r, data, len);
    if (mp_read(&r, &map) != 0 || map.type != MP_MAP)
        return -1;
    for (uint32_t i = 0; i < map.v.n; i++) {
        if (mp_read_pair(&r, &key, &val, S_DEPTH) != 0)
            return -1;
        if (mp_str_eq(&key, "req") && val.type == MP_UINT) {
            h->req = val.v.u;
            has_req = 1;
        }
        else if (mp_str_eq(&key, "seq") && val.type == MP_UINT) {
            h->seq = val.v.u;
            has_seq = 1;
        }
        else if (mp_str_eq(&key, "user_id") && val.type == MP_STR)
            h->user_id = s_text(&val);
        else if (mp_str_eq(&key, "epoch") && s_short_str(&val))
            h->epoch = s_text(&val);
        else if (mp_str_eq(&key, "mode"))
            h->replay = mp_str_eq(&val, "replay");
        else if (mp_str_eq(&key, "error"))
            h->error = 1;
    }
    if (!has_req)
        return -1;
    return h->error || (has_seq && h->epoch.len && h->user_id.len) ? 0 : -1;
}

void
wire_pack_stats_begin(msgpack_packer *pk, uint64_t req, uint32_t n)
{
    msgpack_pack_map(pk, 2);
    wire_pack_kv_u64(pk, "req", req);
    wire_pack_str(pk, "stats");
    msgpack_pack_map(pk, n);
}

int
wire_read_stats(const void *data, size_t len, mp_reader_t *pairs, uint32_t *n)
{
    mp_reader_t r;
    mp_value_t map, key, val;
    mp_reader_init(&r, data, len);
    if (mp_read(&r, &map) != 0 || map.type != MP_MAP)
        return -1;
    for (uint32_t i = 0; i < map.v.n; i++) {
        mp_reader_t at = r;
        if (mp_read_pair(&r, &key, &val, S_DEPTH) != 0)
            return -1;
        if (mp_str_eq(&key, "stats") && val.type == MP_MAP) {
            (void)mp_read(&at, &key); /* "stats" */
            (void)mp_read(&at, &val); /* the map's header: its pairs follow */
            *pairs = at;
            *n = val.v.n;
            return 0;
        }
    }
    return -1;
}
