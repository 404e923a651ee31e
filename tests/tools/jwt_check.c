/*  jwt_check: verifies tokens read one per line on stdin, for the interop
 *  tests.
 *
 *  jwt_check [--secret S] [--public-key K] [--now SECONDS] < tokens
 *  prints, per token, "OK sub=<sub> admin=<0|1>" or "ERR <STATUS> <message>".
 *  Exits 2 (with the reason on stderr) if the keys are refused.
 */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "jwt.h"

static const char *const s_names[] = {
    "OK",      "MISSING",       "MALFORMED",   "BAD_ALG",    "BAD_SIGNATURE",
    "EXPIRED", "NOT_YET_VALID", "MISSING_EXP", "BAD_CLAIMS",
};

int
main(int argc, char **argv)
{
    const char *secret = NULL, *public_key = NULL;
    int64_t now = (int64_t)time(NULL);
    for (int i = 1; i < argc; i++) {
        if (i + 1 < argc && strcmp(argv[i], "--secret") == 0)
            secret = argv[++i];
        else if (i + 1 < argc && strcmp(argv[i], "--public-key") == 0)
            public_key = argv[++i];
        else if (i + 1 < argc && strcmp(argv[i], "--now") == 0)
            now = strtoll(argv[++i], NULL, 10);
        else {
            fprintf(stderr, "usage: jwt_check [--secret S] [--public-key K] [--now SECONDS]\n");
            return 2;
        }
    }
    if (sodium_init() < 0) {
        fprintf(stderr, "jwt_check: sodium_init failed\n");
        return 2;
    }
    jwt_keys_t keys;
    char err[256];
    if (jwt_keys_init(&keys, secret, public_key, err, sizeof err) != 0) {
        fprintf(stderr, "jwt_check: %s\n", err);
        return 2;
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    while ((n = getline(&line, &cap, stdin)) >= 0) {
        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
            n--;
        jwt_claims_t c;
        jwt_status_t st = jwt_verify(&keys, line, (size_t)n, now, &c);
        if (st == JWT_OK)
            printf("OK sub=%s admin=%d\n", c.sub, c.admin);
        else
            printf("ERR %s %s\n", s_names[st], jwt_status_message(st));
    }
    free(line);
    jwt_keys_clear(&keys);
    return 0;
}
