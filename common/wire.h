/*  wire.h: the messages between the broker and its gateways and tools,
 *  packed and read in one place (docs/protocol.md, sections 2 and 3).
 *
 *    control   {"epoch":E}                            confirmation
 *              {"epoch":E,"boot":B,"ts":MS}           heartbeat
 *    sync      {"req":N,"user_id":U[,"since":S,"epoch":E]}
 *              {"req":N,"op":"stats"}
 *    answer    {"req":N,"user_id":U,"epoch":E,"seq":S,"mode":"replay"|"snapshot"}
 *              {"req":N,"error":"<sentence>"}         (req absent if unreadable)
 *              {"req":N,"stats":{...}}
 *
 *  Packing appends to a buf_t (check buf_ok() once at the end). Reading
 *  never allocates: strings point into the message. Readers are strict
 *  where the broker reads a gateway (a request must be exactly right) and
 *  lenient where a gateway reads the broker (unknown keys are skipped, so
 *  a newer broker can add some).
 */
#ifndef TC_WIRE_H
#define TC_WIRE_H

#include <msgpack.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "event.h"
#include "mpread.h"

/*  Packs a NUL-terminated string / n bytes as a msgpack str. */
void wire_pack_str(msgpack_packer *pk, const char *s);
void wire_pack_strn(msgpack_packer *pk, const char *s, size_t n);
/*  Packs "key": value. */
void wire_pack_kv_u64(msgpack_packer *pk, const char *key, uint64_t v);
void wire_pack_kv_str(msgpack_packer *pk, const char *key, const char *s, size_t n);

/* ---------------------------------------------------------------- control */

typedef struct wire_control {
    event_text_t epoch; /* required, 1..EVENT_EPOCH_MAX bytes */
    event_text_t boot;  /* heartbeats: 1..EVENT_EPOCH_MAX bytes; len 0 if absent */
    int64_t ts;
} wire_control_t;

/*  boot NULL: a confirmation. */
void wire_pack_control(buf_t *out, const char *epoch, const char *boot, int64_t ts_ms);
/*  0, or -1 if the epoch is missing or a string is out of bounds. */
int wire_read_control(const void *data, size_t len, wire_control_t *c);

/* ---------------------------------------------------------------- sync */

typedef struct wire_sync_req {
    uint64_t req;
    int stats;             /* {"op":"stats"} */
    event_text_t user_id;  /* a valid user id unless stats */
    int has_since;         /* since and epoch come together */
    uint64_t since;
    event_text_t epoch;
} wire_sync_req_t;

void wire_pack_sync_req(buf_t *out, const wire_sync_req_t *r);
/*  Strict: 0, or -1 (then *has_req tells whether req could be read, for
 *  the error answer). */
int wire_read_sync_req(const void *data, size_t len, wire_sync_req_t *r, int *has_req);

typedef struct wire_sync_head {
    uint64_t req;
    event_text_t user_id;
    event_text_t epoch;
    uint64_t seq;
    int replay; /* mode: 1 replay, 0 snapshot */
    int error;  /* {"error":...}: the request was refused */
} wire_sync_head_t;

void wire_pack_sync_head(buf_t *out, const wire_sync_head_t *h);
/*  has_req 0: the request could not even be read. */
void wire_pack_sync_error(buf_t *out, int has_req, uint64_t req, const char *sentence);
/*  0 if req is readable (then h->error, or user_id, epoch and seq are
 *  set, else -1 as for a malformed header), -1 otherwise. */
int wire_read_sync_head(const void *data, size_t len, wire_sync_head_t *h);

/*  Starts {"req":N,"stats":{ with n pairs to follow. */
void wire_pack_stats_begin(msgpack_packer *pk, uint64_t req, uint32_t n);
/*  Finds the stats map of an answer: *pairs is set to its first pair
 *  (read them with mp_read_pair()) and *n to their count. 0, or -1. */
int wire_read_stats(const void *data, size_t len, mp_reader_t *pairs, uint32_t *n);

#endif
