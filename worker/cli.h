/*  cli.h: taskcast-cli's subcommands and what they share (private).
 *
 *  Each subcommand is one file with one entry point taking the whole argv
 *  (argv[1] is the subcommand, its options start at argv[2]) and returning
 *  the process exit status.
 */
#ifndef TC_CLI_H
#define TC_CLI_H

#include <stddef.h>
#include <stdint.h>

#include "cfg.h"
#include "log.h"

#define CLI_NAME "taskcast-cli"

/* Exit statuses, the same for every subcommand. */
enum {
    CLI_EXIT_OK = 0,      /* done */
    CLI_EXIT_FAIL = 1,    /* rejected, refused, connection failure */
    CLI_EXIT_USAGE = 2,   /* bad flags or configuration */
    CLI_EXIT_TIMEOUT = 3, /* no answer / nothing more in time */
    CLI_EXIT_AUTH = 4     /* the gateway closed with a 4xxx code */
};

/*  The subcommands. */
int cli_publish(int argc, char **argv);
int cli_token(int argc, char **argv);
int cli_watch(int argc, char **argv);
int cli_stats(int argc, char **argv);
int cli_submit(int argc, char **argv);
int cli_cancel(int argc, char **argv);

/*  Parses a subcommand's options from argv[2..] and sets up its log from
 *  the "log-level" option. Prints help (stdout) or the error (stderr)
 *  itself. Returns -1 to go on, or the exit status to return at once. */
int cli_parse(cfg_opt_t *opts, size_t n, int argc, char **argv, const char *usage,
              const char *summary, log_t *lg);

/*  Mints an HS256 token for user, valid ttl_s seconds from now (admin adds
 *  role "admin"). secret is the raw bytes of TASKCAST_JWT_SECRET. Returns 0
 *  with the token in out (at least 1024 bytes), or -1 with a sentence in
 *  err. */
int cli_mint_token(const char *secret, const char *user, uint64_t ttl_s, int admin, char *out,
                   size_t outlen, char *err, size_t errlen);

/*  A gateway base URL: ws://HOST[:PORT][/PREFIX] or wss://... */
typedef struct cli_url {
    int tls;
    char host[256]; /* without brackets for IPv6 */
    int port;
    char prefix[512];      /* "" or "/something" without a trailing slash */
    char host_header[300]; /* "host" or "host:port", IPv6 in brackets */
} cli_url_t;

/*  Parses a base URL. Returns 0, or -1 with a sentence in err. */
int cli_url_parse(const char *text, cli_url_t *url, char *err, size_t errlen);

/*  Appends the percent-encoded form of s (everything outside RFC 3986's
 *  unreserved set is escaped) to out, NUL-terminated. Returns 0, or -1 if
 *  it does not fit. */
int cli_url_escape(const char *s, char *out, size_t outlen);

#endif
