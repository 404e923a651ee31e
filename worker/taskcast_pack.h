/*  taskcast_pack.h: the worker's wire format (private to tc_worker and its
 *  unit tests; programs use taskcast.h).
 *
 *  Request: one frame, a msgpack map with string keys task_id, user_id,
 *  status, [progress], [message], [data], [ts], producer, pseq.
 *  Answer: one frame, a msgpack map {"ok": true, "pseq": N, "seq": S
 *  [, "duplicate": true]} or {"ok": false, "error": CODE, "detail": TEXT
 *  [, "pseq": N]}.
 */
#ifndef TC_TASKCAST_PACK_H
#define TC_TASKCAST_PACK_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "mpread.h"
#include "taskcast.h"

#define TC_PRODUCER_MAX   128 /* bytes of a producer id */
#define TC_DATA_DEPTH_MAX 64  /* nesting accepted in data before sending */

/*  Checks the obvious argument errors: NULL or empty required fields, a
 *  status outside the five, progress not finite or outside 0..100, data
 *  that is not exactly one well-formed msgpack item, a negative ts. The
 *  broker checks the rest. Returns 0, or -1. */
int tc_event_check(const tc_event_t *ev);

/*  1 if status is queued, running, succeeded, failed or cancelled. */
int tc_status_valid(const char *status);

/*  1 if text is a valid producer id: 1..128 printable ASCII bytes. */
int tc_producer_valid(const char *text);

/*  Appends the request map for ev with the idempotency key (producer,
 *  pseq) to out. ev must have passed tc_event_check(). Returns 0, or -1 if
 *  memory ran out. */
int tc_pack_event(const tc_event_t *ev, const char *producer, uint64_t pseq, buf_t *out);

/*  Parses one answer into reply (zeroed first; error and detail are
 *  truncated to fit and control characters replaced). *has_pseq tells
 *  whether the answer named a pseq. Returns 0, or -1 if the answer is not
 *  a map of the expected shape (ok:true needs pseq and seq, ok:false needs
 *  error). */
int tc_reply_parse(const void *buf, size_t len, tc_reply_t *reply, int *has_pseq);

/*  Copies a msgpack string into a fixed field, truncated, NUL-terminated,
 *  control characters replaced so it prints safely on one line. */
void tc_copy_text(char *out, size_t outlen, const mp_value_t *v);

#endif
