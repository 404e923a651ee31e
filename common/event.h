/*  event.h: the task event, validated exactly as the contract says
 *  (docs/protocol.md, ../DESIGN "The contract").
 *
 *  Worker -> broker: a msgpack map with string keys task_id, user_id,
 *  status, and optionally progress, message, data, ts, producer + pseq (pseq
 *  alone is accepted as a correlation id echoed in the answer).
 *  Broker -> gateway ("published" form): the same map without producer/pseq,
 *  with ts always set and seq (per-user, from 1) and epoch added.
 *
 *  event_decode() never allocates: text fields point into the input buffer,
 *  data is the raw msgpack span of the "data" value. Every rejection has a
 *  stable code (EVENT_E_*) and one human sentence.
 *
 *  Decisions the contract leaves open:
 *  - a map key that is not a string: wrong_type;
 *  - nil for an optional field means absent (also for data: no "data" in the
 *    frame); nil for a required field: wrong_type; a key given twice is a
 *    duplicate_field even if one of the values is nil;
 *  - data nested deeper than EVENT_DEPTH_MAX containers (an empty array or
 *    map counts as one level; a scalar as none): too_large; data with an ext
 *    value, a NaN/infinite float, or a map key that is not a string or an
 *    integer: invalid_value (duplicate keys in data are not checked);
 *  - integer fields (ts, pseq, seq) given a negative or out-of-range integer:
 *    invalid_value; given a float: wrong_type;
 *  - producer and epoch: printable ASCII without space (0x21..0x7e);
 *  - a float progress that a float 32 holds exactly is packed and rendered
 *    as a float 32 (1.1f shows as 1.1 in the frame, from either form);
 *  - precedence: too_large if the message is over EVENT_WIRE_MAX; not_a_map
 *    if the first item's header is readable and not a map; then malformed
 *    (the bytes are not exactly one msgpack item) whatever else is wrong;
 *    then the first field error in map order (for data, too_large for its
 *    size comes before what is inside); then missing_field.
 */
#ifndef TC_EVENT_H
#define TC_EVENT_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "mpread.h"

#define EVENT_TASK_ID_MAX  128   /* bytes */
#define EVENT_USER_ID_MAX  64    /* bytes of [A-Za-z0-9_.-] */
#define EVENT_MESSAGE_MAX  4096  /* bytes of UTF-8 */
#define EVENT_DATA_MAX     65536 /* bytes of encoded msgpack */
#define EVENT_PRODUCER_MAX 128   /* bytes, printable */
#define EVENT_EPOCH_MAX    64    /* bytes, printable */
#define EVENT_DEPTH_MAX    32    /* containers nested inside data */
/*  Largest event message the broker reads; bigger ones are answered with
 *  too_large. */
#define EVENT_WIRE_MAX (EVENT_DATA_MAX + EVENT_MESSAGE_MAX + 2048)

/*  Stable error codes (part of the public contract, docs/protocol.md). */
#define EVENT_E_MALFORMED       "malformed"       /* not one complete msgpack item */
#define EVENT_E_NOT_A_MAP       "not_a_map"       /* top level is not a map */
#define EVENT_E_MISSING_FIELD   "missing_field"   /* required key absent */
#define EVENT_E_WRONG_TYPE      "wrong_type"      /* key present, value of the wrong type */
#define EVENT_E_INVALID_VALUE   "invalid_value"   /* right type, value not allowed */
#define EVENT_E_TOO_LARGE       "too_large"       /* a field or the message is over its limit */
#define EVENT_E_UNKNOWN_FIELD   "unknown_field"   /* a key the contract does not define */
#define EVENT_E_DUPLICATE_FIELD "duplicate_field" /* a key given twice */
#define EVENT_E_INVALID_UTF8    "invalid_utf8"    /* text that is not UTF-8 */

typedef enum {
    EVENT_QUEUED = 0,
    EVENT_RUNNING,
    EVENT_SUCCEEDED,
    EVENT_FAILED,
    EVENT_CANCELLED
} event_status_t;

typedef enum {
    EVENT_FROM_WORKER, /* worker form: seq/epoch are unknown fields */
    EVENT_FROM_BROKER  /* published form: seq, epoch, ts required */
} event_origin_t;

typedef struct event_text {
    const char *p; /* not NUL-terminated; points into the decoded buffer */
    uint32_t len;
} event_text_t;

typedef struct event {
    event_text_t task_id;
    event_text_t user_id;
    event_status_t status;
    int has_progress;
    mp_value_t progress; /* MP_UINT, MP_INT or MP_FLOAT, within 0..100 */
    int has_message;
    event_text_t message;
    const uint8_t *data; /* raw msgpack of the "data" value, NULL if absent */
    uint32_t data_len;
    int has_ts;
    int64_t ts;       /* ms since the Unix epoch, >= 0 */
    int has_producer; /* producer given (then pseq is too): an idempotency key */
    event_text_t producer;
    int has_pseq; /* pseq given; alone it only correlates the answer */
    uint64_t pseq;
    uint64_t seq;       /* published form only, >= 1 */
    event_text_t epoch; /* published form only */
} event_t;

typedef struct event_error {
    const char *code; /* one of EVENT_E_* */
    char detail[200]; /* one sentence naming the field and the rule */
} event_error_t;

/*  Decodes and validates one event. Returns 0, or -1 with err filled. */
int event_decode(event_t *ev, const void *buf, size_t len, event_origin_t origin,
                 event_error_t *err);

/*  "queued", "running", ... */
const char *event_status_name(event_status_t status);
/*  1 for succeeded, failed, cancelled. */
int event_status_is_terminal(event_status_t status);

/*  Appends the published form of ev to out: task_id, user_id,
 *  status, progress, message, data (raw bytes copied), ts, seq, epoch.
 *  producer/pseq are not forwarded. ts is ev's own when it has one, else the
 *  ts argument. Returns 0, or -1 if out ran out of memory. */
int event_pack_published(const event_t *ev, int64_t ts, uint64_t seq, const char *epoch,
                         size_t epoch_len, buf_t *out);
/*  The same, straight into memory: event_published_size() bytes exactly,
 *  which event_put_published() writes to out (returning that size). */
size_t event_published_size(const event_t *ev, int64_t ts, uint64_t seq, size_t epoch_len);
size_t event_put_published(const event_t *ev, int64_t ts, uint64_t seq, const char *epoch,
                           size_t epoch_len, uint8_t *out);

/*  Appends the browser frame
 *    {"type":"task","seq":S,"task_id":..,"status":..,"progress":..,
 *     "message":..,"data":..,"ts":..}
 *  (absent optional fields omitted; data converted exactly: integers stay
 *  integers up to 64 bits, floats keep a fraction or exponent, binary becomes
 *  a standard base64 string, integer map keys become decimal strings).
 *  ev must come from event_decode(). Returns 0, or -1 on out of memory. */
int event_render_json(const event_t *ev, buf_t *out);

/*  Appends one msgpack value (what event_decode() accepts as data) as JSON,
 *  converted as event_render_json() converts data. Returns 0, or -1 if it
 *  is not such a value or on out of memory (out is then as before). */
int event_json_value(buf_t *out, const void *p, size_t len);

/*  Appends s as a JSON string literal (quotes and escapes). s must be UTF-8. */
void event_json_string(buf_t *out, const char *s, size_t len);

/*  1 if the bytes are valid UTF-8 (no overlongs, no surrogates, <= U+10FFFF). */
int event_utf8_valid(const char *s, size_t len);

/*  1 if the bytes are a valid user id: 1..64 of [A-Za-z0-9_.-]. */
int event_user_id_valid(const char *s, size_t len);

#define EVENT_QUOTE_MAX 40 /* bytes of untrusted text event_quote() writes */
/*  Writes at most EVENT_QUOTE_MAX bytes of untrusted text into out as
 *  printable ASCII, for an error sentence: other bytes (and ' and \)
 *  become \xNN, a longer text ends in "...". out: EVENT_QUOTE_MAX * 4 + 4
 *  bytes hold any. */
void event_quote(char *out, size_t outlen, const char *s, size_t len);

#endif
