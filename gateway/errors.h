/*  errors.h: every error the gateway reports, in one table.
 *
 *  Each row: the id, the WebSocket close code that follows the error frame
 *  (0: the connection stays open, or the error is HTTP only), the HTTP status
 *  of the same error on a plain request, the stable `code` string of the
 *  JSON error ({"type":"error","code":...,"message":...}) and the default
 *  sentence. docs/protocol.md ("Close codes the gateway decides") is this
 *  table in prose; tests/unit/test_errors_doc.py keeps the two in step.
 *
 *  Close codes beyond 1001-1011 are 4000 + the HTTP status that says the
 *  same: private-range codes are accepted by every client library (lws
 *  clients turn 1012-1014 into 1002).
 */
#ifndef TC_GATEWAY_ERRORS_H
#define TC_GATEWAY_ERRORS_H

#include <stdint.h>

/*  X(id, close code, HTTP status, code, sentence) */
#define GW_ERRORS(X)                                                                               \
    X(SHUTDOWN, 1001, 503, "shutdown", "the gateway is shutting down")                             \
    X(BINARY, 1003, 400, "bad_request", "binary messages are not accepted")                        \
    X(NO_ROUTE, 1008, 404, "not_found", "no such route")                                           \
    X(TOO_BIG, 1009, 413, "message_too_big", "client messages are limited to 512 bytes")           \
    X(INTERNAL, 1011, 500, "internal", "out of memory")                                            \
    X(BAD_RESUME, 4400, 400, "bad_request", "since and epoch must come from an earlier hello")     \
    X(UNAUTHORIZED, 4401, 401, "unauthorized", "missing token")                                    \
    X(FORBIDDEN, 4403, 403, "forbidden", "token is for another user")                              \
    X(SLOW, 4429, 429, "slow_consumer", "the connection could not keep up; reconnect with since")  \
    X(UNAVAILABLE, 4503, 503, "unavailable", "the broker did not answer; try again later")         \
    X(BAD_MESSAGE, 0, 400, "bad_request",                                                          \
      "unknown message; understood: {\"type\":\"ping\"}, "                                         \
      "{\"type\":\"cancel\",\"task_id\":\"...\"}")                                                 \
    X(BAD_SUBMIT, 0, 400, "bad_request",                                                           \
      "a submit is a JSON object: kind, and args, task_id, timeout_s, max_retries, user_id")       \
    X(CANCEL_REFUSED, 0, 404, "not_found", "no queued or running job of yours has this task_id")   \
    X(JOBS_UNAVAILABLE, 0, 503, "unavailable",                                                     \
      "the broker's jobs endpoint did not answer; try again later")                                \
    X(METHOD, 0, 405, "method_not_allowed", "only GET is served")                                  \
    X(METHOD_POST, 0, 405, "method_not_allowed", "this route takes POST")                          \
    X(UPGRADE_REQUIRED, 0, 426, "upgrade_required",                                                \
      "this route is a WebSocket: connect with ws:// and ?token=")                                 \
    X(NOT_WEBSOCKET, 0, 400, "bad_request", "only WebSocket upgrades")

#define GW_ERROR_ENUM(id, close, http, code, sentence) GW_E_##id,
typedef enum { GW_ERRORS(GW_ERROR_ENUM) GW_E_COUNT } gw_error_t;
#undef GW_ERROR_ENUM

typedef struct gw_error_info {
    uint16_t close; /* WebSocket close code after the error frame; 0: none */
    uint16_t http;  /* HTTP status */
    const char *code;
    const char *sentence;
} gw_error_info_t;

/*  The row of an error. */
const gw_error_info_t *gw_error_info(gw_error_t e);

#endif
