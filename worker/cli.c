/*  cli.c: taskcast-cli, one command per job: checks the libraries, then
 *  hands argv to the subcommand. */
#include "cli.h"

#include <stdio.h>
#include <string.h>

#include "version.h"

typedef struct {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} s_command_t;

static const s_command_t s_commands[] = {
    {"publish", cli_publish, "send one task event to the broker and print its answer"},
    {"token", cli_token, "mint a development HS256 token (TASKCAST_JWT_SECRET)"},
    {"watch", cli_watch, "follow a user's task stream like a browser and print every frame"},
    {"stats", cli_stats, "print the broker's counters, or a gateway's status (--url)"},
    {"submit", cli_submit, "submit a job to the broker's jobs endpoint; print its task id"},
    {"cancel", cli_cancel, "cancel a user's queued or running job"},
};

#define S_NCOMMANDS (sizeof s_commands / sizeof s_commands[0])

static void
s_usage(FILE *out)
{
    fprintf(out, "usage: " CLI_NAME " COMMAND [options]\n\n"
                 "Publish task events to a taskcast broker and watch them arrive.\n\n"
                 "commands:\n");
    for (size_t i = 0; i < S_NCOMMANDS; i++)
        fprintf(out, "  %-10s %s\n", s_commands[i].name, s_commands[i].summary);
    fprintf(out,
            "\n  %-10s %s\n  %-10s %s\n\n"
            "'" CLI_NAME " COMMAND --help' lists the options of a command.\n",
            "--help", "show this help and exit", "--version", "show versions and exit");
}

int
cli_parse(cfg_opt_t *opts, size_t n, int argc, char **argv, const char *usage, const char *summary,
          log_t *lg)
{
    char prefix[64];
    snprintf(prefix, sizeof prefix, "%s %s", CLI_NAME, argv[1]);
    int rc = cfg_parse_main(opts, n, argc, argv, 2, prefix, usage, summary);
    if (rc >= 0)
        return rc; /* CLI_EXIT_OK after --help, CLI_EXIT_USAGE on an error */
    log_level_t level = LOG_INFO;
    const char *text = cfg_value(opts, n, "log-level");
    if (text && log_parse_level(text, &level) != 0) {
        fprintf(stderr, "%s %s: --log-level must be error, warn, info or debug, not '%s'\n",
                CLI_NAME, argv[1], text);
        return CLI_EXIT_USAGE;
    }
    log_init(lg, CLI_NAME, level);
    return -1;
}

int
main(int argc, char **argv)
{
    char err[256];
    if (version_check_libs(err, sizeof err) != 0) {
        fprintf(stderr, "%s: %s\n", CLI_NAME, err);
        return CLI_EXIT_FAIL;
    }
    if (argc < 2) {
        s_usage(stderr);
        return CLI_EXIT_USAGE;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        s_usage(stdout);
        return CLI_EXIT_OK;
    }
    if (strcmp(argv[1], "--version") == 0) {
        version_describe(err, sizeof err);
        printf("%s\n", err);
        return CLI_EXIT_OK;
    }
    for (size_t i = 0; i < S_NCOMMANDS; i++)
        if (strcmp(argv[1], s_commands[i].name) == 0)
            return s_commands[i].run(argc, argv);
    fprintf(stderr, "%s: unknown command '%s' (see %s --help)\n", CLI_NAME, argv[1], CLI_NAME);
    return CLI_EXIT_USAGE;
}
