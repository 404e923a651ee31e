/*  cli_token.c: `taskcast-cli token`: mints a development HS256 token. The
 *  token goes to stdout for the user, never into a log line. */
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "event.h"
#include "jwt.h"

#define S_TTL_MAX (366 * 24 * 3600) /* a development token lives a year at most */

static const cfg_opt_t s_cfg[] = {
    {"user", NULL, NULL, "user id the token is for: its sub claim (required)", 0, NULL},
    {"ttl", NULL, "3600", "seconds until the token expires", 0, NULL},
    {"admin", NULL, NULL, "add role \"admin\" (for the gateway's status route)", 1, NULL},
    {"jwt-secret", "TASKCAST_JWT_SECRET", NULL, "HS256 secret, at least 32 bytes", 0, NULL},
    {"log-level", "TASKCAST_LOG_LEVEL", "info", "error, warn, info or debug", 0, NULL},
};

#define S_NOPTS (sizeof s_cfg / sizeof s_cfg[0])

typedef struct {
    log_t log;
    cfg_opt_t cfg[S_NOPTS]; /* a copy of s_cfg that cfg_parse fills */
    char token[JWT_TOKEN_MAX + 1];
} s_token_t;

/* cli_mint_token: see cli.h */
int
cli_mint_token(const char *secret, const char *user, uint64_t ttl_s, int admin, char *out,
               size_t outlen, char *err, size_t errlen)
{
    if (!secret || !*secret) {
        snprintf(err, errlen,
                 "no signing secret: set TASKCAST_JWT_SECRET or pass --jwt-secret "
                 "(at least %d bytes)",
                 JWT_SECRET_MIN);
        return -1;
    }
    size_t len = strlen(secret);
    if (len < JWT_SECRET_MIN) {
        snprintf(err, errlen,
                 "the signing secret is %zu bytes; HS256 needs at least %d (RFC 7518): "
                 "use a longer TASKCAST_JWT_SECRET",
                 len, JWT_SECRET_MIN);
        return -1;
    }
    if (!user || !event_user_id_valid(user, strlen(user))) {
        snprintf(err, errlen, "the user id must be 1..%d characters of A-Z a-z 0-9 _ . -",
                 EVENT_USER_ID_MAX);
        return -1;
    }
    int64_t now = (int64_t)time(NULL);
    if (jwt_sign_hs256((const unsigned char *)secret, len, user, now, now + (int64_t)ttl_s, admin,
                       out, outlen) < 0) {
        snprintf(err, errlen, "could not sign the token");
        return -1;
    }
    return 0;
}

/* cli_token: see cli.h */
int
cli_token(int argc, char **argv)
{
    s_token_t self = {0};
    memcpy(self.cfg, s_cfg, sizeof s_cfg);
    int rc = cli_parse(self.cfg, S_NOPTS, argc, argv, CLI_NAME " token --user U [options]",
                       "Mints an HS256 token for a user with TASKCAST_JWT_SECRET and prints it\n"
                       "on stdout. For development and tests: production tokens come from\n"
                       "your web backend.",
                       &self.log);
    if (rc >= 0)
        return rc;
    const char *user = cfg_value(self.cfg, S_NOPTS, "user");
    if (!user || !*user) {
        fprintf(stderr, "%s token: --user is required (see --help)\n", CLI_NAME);
        return CLI_EXIT_USAGE;
    }
    uint64_t ttl;
    const char *text = cfg_value(self.cfg, S_NOPTS, "ttl");
    if (cfg_parse_u64(text, 1, S_TTL_MAX, &ttl) != 0) {
        fprintf(stderr, "%s token: --ttl must be 1..%d seconds, not '%s'\n", CLI_NAME, S_TTL_MAX,
                text);
        return CLI_EXIT_USAGE;
    }
    char err[256];
    if (cli_mint_token(cfg_value(self.cfg, S_NOPTS, "jwt-secret"), user, ttl,
                       cfg_value(self.cfg, S_NOPTS, "admin") != NULL, self.token, sizeof self.token,
                       err, sizeof err) != 0) {
        fprintf(stderr, "%s token: %s\n", CLI_NAME, err);
        return CLI_EXIT_USAGE;
    }
    log_debug(&self.log, "minted a token for user=%s ttl=%llus%s", user, (unsigned long long)ttl,
              cfg_value(self.cfg, S_NOPTS, "admin") ? " role=admin" : "");
    printf("%s\n", self.token);
    sodium_memzero(self.token, sizeof self.token);
    return fflush(stdout) == 0 ? CLI_EXIT_OK : CLI_EXIT_FAIL;
}
