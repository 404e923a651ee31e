/*  log.c: single-line, redacted logging to stderr. */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

static const char *const s_level_names[] = {"error", "warn", "info", "debug"};

int
log_parse_level(const char *text, log_level_t *out)
{
    for (int i = 0; i <= LOG_DEBUG; i++) {
        if (text && strcasecmp(text, s_level_names[i]) == 0) {
            *out = (log_level_t)i;
            return 0;
        }
    }
    return -1;
}

void
log_init(log_t *lg, const char *name, log_level_t level)
{
    lg->name = name;
    lg->level = level;
}

int
log_enabled(const log_t *lg, log_level_t level)
{
    return lg && level <= lg->level;
}

static int
s_is_b64url(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_';
}

/*  Length of a JWT-shaped word at p (eyJ + base64url, two dots), or 0. */
static size_t
s_jwt_length(const char *p)
{
    if (strncmp(p, "eyJ", 3) != 0)
        return 0;
    size_t n = 0;
    int dots = 0;
    while (s_is_b64url(p[n]) || p[n] == '.') {
        if (p[n] == '.')
            dots++;
        n++;
    }
    return dots >= 2 ? n : 0;
}

size_t
log_redact_tokens(char *text)
{
    static const char mark[] = "[redacted]";
    char *r = text, *w = text;
    while (*r) {
        size_t skip = 0;
        if (strncasecmp(r, "token=", 6) == 0) {
            memmove(w, r, 6);
            w += 6;
            r += 6;
            while (r[skip] && r[skip] != '&' && r[skip] != ' ' && r[skip] != '"' &&
                   r[skip] != '\'' && r[skip] != '\n')
                skip++;
        }
        else if ((r == text || !s_is_b64url(r[-1])) && (skip = s_jwt_length(r)) > 0) {
            /* a bare JWT: replaced below */
        }
        else {
            *w++ = *r++;
            continue;
        }
        /* Only shrink: a value shorter than the mark is blanked instead. */
        if (skip >= sizeof mark - 1) {
            memcpy(w, mark, sizeof mark - 1);
            w += sizeof mark - 1;
        }
        else if (skip > 0) {
            memset(w, '*', skip);
            w += skip;
        }
        r += skip;
    }
    *w = '\0';
    return (size_t)(w - text);
}

void
log_write(const log_t *lg, log_level_t level, const char *fmt, ...)
{
    if (!log_enabled(lg, level))
        return;
    char line[2048];
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    int n = snprintf(
        line, sizeof line, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s %s[%d]: ", tm.tm_year + 1900,
        tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000,
        s_level_names[level], lg->name ? lg->name : "taskcast", (int)getpid());
    if (n < 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
    va_end(ap);
    /* One event, one line: fold any newline a caller let through. */
    for (char *p = line; *p; p++)
        if (*p == '\n' || *p == '\r')
            *p = ' ';
    size_t len = log_redact_tokens(line);
    line[len++] = '\n';
    ssize_t ignored = write(STDERR_FILENO, line, len);
    (void)ignored;
}
