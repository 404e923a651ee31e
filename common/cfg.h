/*  cfg.h: configuration from command-line flags and TASKCAST_* variables.
 *
 *  A program describes its options in a table of cfg_opt_t. cfg_parse()
 *  resolves each one: a flag (--name VALUE or --name=VALUE) wins over the
 *  environment variable, which wins over the default. Unknown flags, missing
 *  values and stray arguments are errors with a sentence in err.
 */
#ifndef TC_CFG_H
#define TC_CFG_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef struct cfg_opt {
    const char *flag;  /* long flag without dashes: "ingest" for --ingest */
    const char *env;   /* environment variable, or NULL */
    const char *def;   /* default value, or NULL for none */
    const char *help;  /* one line for --help */
    int is_switch;     /* 1: takes no value; value becomes "1" when given */
    const char *value; /* out: resolved value (argv, environ or def), or NULL */
} cfg_opt_t;

enum { CFG_OK = 0, CFG_HELP = 1, CFG_ERROR = -1 };

/*  Resolves every option from argv[first..argc) and the environment.
 *  Returns CFG_OK, CFG_HELP if --help or -h was given, or CFG_ERROR with a
 *  sentence in err. */
int cfg_parse(cfg_opt_t *opts, size_t n, int argc, char **argv, int first, char *err,
              size_t errlen);

/*  cfg_parse() for a program's main(): on --help prints the help to stdout,
 *  on an error "PREFIX: sentence" to stderr. Returns -1 to go on, or the exit
 *  status to return at once (0 after --help, 2 on a usage error). */
int cfg_parse_main(cfg_opt_t *opts, size_t n, int argc, char **argv, int first, const char *prefix,
                   const char *usage, const char *summary);

/*  Prints "usage: PROG [options]", the summary and one line per option with
 *  its variable and default. */
void cfg_print_help(FILE *out, const char *usage, const char *summary, const cfg_opt_t *opts,
                    size_t n);

/*  Looks an option up by flag name; NULL if absent from the table. */
const cfg_opt_t *cfg_find(const cfg_opt_t *opts, size_t n, const char *flag);

/*  Value of an option by flag name, or NULL if unset. */
const char *cfg_value(const cfg_opt_t *opts, size_t n, const char *flag);

/*  Parses a decimal unsigned integer in [min, max]. 0 or -1. */
int cfg_parse_u64(const char *text, uint64_t min, uint64_t max, uint64_t *out);

/*  Parses "HOST:PORT" (HOST may be empty, an IPv4 address, a name or
 *  "[v6]"). host must hold 256 bytes. 0 or -1. */
int cfg_parse_listen(const char *text, char *host, size_t hostlen, int *port);

#endif
