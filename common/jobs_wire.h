/*  jobs_wire.h: the pool messages between the broker's jobs ROUTER and a
 *  taskcast-worker (the jobs spec, "The pool"), packed and read in one place
 *  so that both sides use the same field names.
 *
 *    worker -> broker
 *      {"type":"hello","name":N,"kinds":[K...],"concurrency":C}
 *      {"type":"heartbeat"}  {"type":"bye"}
 *      {"type":"started","task_id":T,"attempt":A}
 *      {"type":"progress","task_id":T,"attempt":A,"progress"?:0..100,"message"?:S}
 *      {"type":"done","task_id":T,"attempt":A,"status":S,"reason"?:R,"message"?:S,
 *       "result"?:<any>}
 *      {"type":"release","task_id":T,"attempt":A}
 *    broker -> worker
 *      {"type":"welcome","heartbeat_ms":H,"liveness":L}
 *      {"type":"job","task_id":T,"user_id":U,"kind":K,"args":<any>,"attempt":A,
 *       "timeout_s":N}
 *      {"type":"cancel","task_id":T,"attempt":A}
 *      {"type":"heartbeat"}
 *
 *  Packing appends to a buf_t (check buf_ok() once at the end). Reading
 *  never allocates: strings and args/result point into the message. The
 *  reader is lenient about unknown keys (forward compatibility) and strict
 *  about the type of every known one; jobs_wire_read() checks the fields a
 *  type requires. The broker reads what workers send with it too: a worker
 *  message it refuses is one the broker ignores (docs/protocol.md, 6).
 */
#ifndef TC_JOBS_WIRE_H
#define TC_JOBS_WIRE_H

#include <stddef.h>
#include <stdint.h>

#include <msgpack.h>

#include "buf.h"
#include "event.h"

#define JOBS_KIND_MAX 64 /* bytes of [A-Za-z0-9_.-] */

typedef enum {
    JOBS_UNKNOWN = 0,
    JOBS_HELLO,
    JOBS_HEARTBEAT,
    JOBS_STARTED,
    JOBS_PROGRESS,
    JOBS_DONE,
    JOBS_RELEASE,
    JOBS_BYE,
    JOBS_WELCOME,
    JOBS_JOB,
    JOBS_CANCEL,
} jobs_type_t;

/*  A progress value: an integer or a float, 0..100. */
typedef struct jobs_progress {
    int is_float;
    uint64_t u;
    double f;
} jobs_progress_t;

typedef struct jobs_msg {
    jobs_type_t type;
    event_text_t task_id, user_id, kind, name, status, reason, message;
    uint64_t attempt, timeout_s, heartbeat_ms, liveness, concurrency;
    int has_attempt, has_timeout_s, has_heartbeat_ms, has_liveness, has_concurrency;
    int has_progress;
    jobs_progress_t progress;
    const uint8_t *args, *result; /* raw msgpack spans, NULL if absent */
    size_t args_len, result_len;
    const uint8_t *kinds; /* hello: the array's elements (kinds_n strings) */
    size_t kinds_len;
    uint32_t kinds_n;
} jobs_msg_t;

/*  The "type" string of a message type ("hello", ...), or "?" */
const char *jobs_type_name(jobs_type_t t);

/*  1 if a kind name is valid: 1..64 bytes of [A-Za-z0-9_.-]. */
int jobs_kind_valid(const char *s, size_t len);

/*  The "type" string of a message, wherever it stands in the map (the
 *  broker's socket carries submits and cancels too, which are not read
 *  here). Returns 0, or -1 with a sentence in err; *is_map is 1 if the
 *  message is one well-formed map with string keys (then only "type" was
 *  missing or not a string), else 0. */
int jobs_wire_type(const void *data, size_t len, event_text_t *type, int *is_map, char *err,
                   size_t errlen);

/*  Reads one message. Returns 0, or -1 with a sentence in err (not a map,
 *  unknown type, a known key of the wrong type, a required field missing).
 *  m->type is read first: it is set (JOBS_UNKNOWN for a type not named
 *  above) also when a field is refused. */
int jobs_wire_read(const void *data, size_t len, jobs_msg_t *m, char *err, size_t errlen);

/*  A hello's kinds, one at a time: *at starts at 0. 1 with the next kind,
 *  or 0 after the last. */
int jobs_kind_next(const jobs_msg_t *m, size_t *at, event_text_t *kind);

/* ---------------------------------------------------------------- worker -> broker */

void jobs_pack_hello(buf_t *out, const char *name, const char *const *kinds, size_t nkinds,
                     uint64_t concurrency);
/*  heartbeat and bye: {"type":T} alone. */
void jobs_pack_simple(buf_t *out, jobs_type_t type);
/*  started and release: {"type":T,"task_id":..,"attempt":..}. */
void jobs_pack_task(buf_t *out, jobs_type_t type, const char *task_id, uint64_t attempt);
/*  progress NULL / message NULL: left out. */
void jobs_pack_progress(buf_t *out, const char *task_id, uint64_t attempt,
                        const jobs_progress_t *progress, const char *message);
/*  reason, message NULL: left out; result NULL: left out, else raw msgpack. */
void jobs_pack_done(buf_t *out, const char *task_id, uint64_t attempt, const char *status,
                    const char *reason, const char *message, const void *result, size_t result_len);

/*  "progress": N or F, as a pair of the map pk is packing (the worker's
 *  message, and the task event the broker makes of it). */
void jobs_pack_kv_progress(msgpack_packer *pk, const jobs_progress_t *progress);

/* ---------------------------------------------------------------- broker -> worker */

void jobs_pack_welcome(buf_t *out, uint64_t heartbeat_ms, uint64_t liveness);
/*  args: raw msgpack (NULL: nil). */
void jobs_pack_job(buf_t *out, const char *task_id, const char *user_id, const char *kind,
                   const void *args, size_t args_len, uint64_t attempt, uint64_t timeout_s);
/*  cancel: jobs_pack_task(out, JOBS_CANCEL, ...). */

#endif
