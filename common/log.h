/*  log.h: one line per meaningful event, on stderr, never a token.
 *
 *  A process owns one log_t in its context struct and passes it to the
 *  functions that log. Lines look like
 *      2026-11-24T05:40:00.123Z info taskcast-gateway: authenticated user=2 conn=7
 *  Every line goes through log_redact_tokens() before it is written, so a
 *  "token=..." value or anything shaped like a JWT is replaced by "[redacted]"
 *  even if a caller passes a URL or header by mistake.
 */
#ifndef TC_LOG_H
#define TC_LOG_H

#include <stddef.h>

typedef enum { LOG_ERROR = 0, LOG_WARN = 1, LOG_INFO = 2, LOG_DEBUG = 3 } log_level_t;

typedef struct log {
    const char *name;  /* program name shown on every line */
    log_level_t level; /* lines above this level are dropped */
} log_t;

/*  Parses "error", "warn", "info" or "debug". Returns 0, or -1 if unknown. */
int log_parse_level(const char *text, log_level_t *out);

/*  Sets the program name and level. */
void log_init(log_t *lg, const char *name, log_level_t level);

/*  True if a line at this level would be written (skip costly formatting). */
int log_enabled(const log_t *lg, log_level_t level);

/*  Formats one line and writes it with a single write(2). */
void log_write(const log_t *lg, log_level_t level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/*  Replaces every "token=VALUE" value and every JWT-shaped word
 *  (eyJ...x.y.z) in the NUL-terminated text with "[redacted]", in place
 *  (the text only shrinks). Returns the new length. */
size_t log_redact_tokens(char *text);

#define log_error(lg, ...) log_write((lg), LOG_ERROR, __VA_ARGS__)
#define log_warn(lg, ...)  log_write((lg), LOG_WARN, __VA_ARGS__)
#define log_info(lg, ...)  log_write((lg), LOG_INFO, __VA_ARGS__)
#define log_debug(lg, ...)                                                                         \
    do {                                                                                           \
        if (log_enabled((lg), LOG_DEBUG))                                                          \
            log_write((lg), LOG_DEBUG, __VA_ARGS__);                                               \
    } while (0)

#endif
