/*  cfg.c: flags > environment > defaults. */
#include "cfg.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

const cfg_opt_t *
cfg_find(const cfg_opt_t *opts, size_t n, const char *flag)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(opts[i].flag, flag) == 0)
            return &opts[i];
    return NULL;
}

const char *
cfg_value(const cfg_opt_t *opts, size_t n, const char *flag)
{
    const cfg_opt_t *o = cfg_find(opts, n, flag);
    return o ? o->value : NULL;
}

int
cfg_parse(cfg_opt_t *opts, size_t n, int argc, char **argv, int first, char *err, size_t errlen)
{
    for (size_t i = 0; i < n; i++) {
        const char *env = opts[i].env ? getenv(opts[i].env) : NULL;
        opts[i].value = (env && *env) ? env : opts[i].def;
    }
    for (int a = first; a < argc; a++) {
        const char *arg = argv[a];
        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0)
            return CFG_HELP;
        if (strncmp(arg, "--", 2) != 0 || arg[2] == '\0') {
            snprintf(err, errlen, "unexpected argument '%s' (see --help)", arg);
            return CFG_ERROR;
        }
        const char *name = arg + 2;
        const char *eq = strchr(name, '=');
        size_t namelen = eq ? (size_t)(eq - name) : strlen(name);
        cfg_opt_t *o = NULL;
        for (size_t i = 0; i < n; i++)
            if (strlen(opts[i].flag) == namelen && strncmp(opts[i].flag, name, namelen) == 0)
                o = &opts[i];
        if (!o) {
            snprintf(err, errlen, "unknown option '--%.*s' (see --help)", (int)namelen, name);
            return CFG_ERROR;
        }
        if (o->is_switch) {
            if (eq) {
                snprintf(err, errlen, "option '--%s' takes no value", o->flag);
                return CFG_ERROR;
            }
            o->value = "1";
        }
        else if (eq)
            o->value = eq + 1;
        else if (a + 1 < argc)
            o->value = argv[++a];
        else {
            snprintf(err, errlen, "option '--%s' needs a value", o->flag);
            return CFG_ERROR;
        }
    }
    return CFG_OK;
}

int
cfg_parse_main(cfg_opt_t *opts, size_t n, int argc, char **argv, int first, const char *prefix,
               const char *usage, const char *summary)
{
    char err[256];
    int rc = cfg_parse(opts, n, argc, argv, first, err, sizeof err);
    if (rc == CFG_HELP) {
        cfg_print_help(stdout, usage, summary, opts, n);
        return 0;
    }
    if (rc != CFG_OK) {
        fprintf(stderr, "%s: %s\n", prefix, err);
        return 2;
    }
    return -1;
}

void
cfg_print_help(FILE *out, const char *usage, const char *summary, const cfg_opt_t *opts, size_t n)
{
    fprintf(out, "usage: %s\n\n%s\n\noptions:\n", usage, summary);
    for (size_t i = 0; i < n; i++) {
        char left[64];
        snprintf(left, sizeof left, "--%s%s", opts[i].flag, opts[i].is_switch ? "" : " VALUE");
        fprintf(out, "  %-26s %s\n", left, opts[i].help);
        if (opts[i].env || opts[i].def) {
            fprintf(out, "  %-26s ", "");
            if (opts[i].env)
                fprintf(out, "[env %s]", opts[i].env);
            if (opts[i].def)
                fprintf(out, "%s[default %s]", opts[i].env ? " " : "", opts[i].def);
            fputc('\n', out);
        }
    }
    fprintf(out, "  %-26s %s\n", "--help", "show this help and exit");
}

int
cfg_parse_u64(const char *text, uint64_t min, uint64_t max, uint64_t *out)
{
    if (!text || *text < '0' || *text > '9')
        return -1;
    errno = 0;
    char *end = NULL;
    unsigned long long v = strtoull(text, &end, 10);
    if (errno || *end != '\0' || v < min || v > max)
        return -1;
    *out = (uint64_t)v;
    return 0;
}

int
cfg_parse_listen(const char *text, char *host, size_t hostlen, int *port)
{
    if (!text)
        return -1;
    const char *colon = strrchr(text, ':');
    if (!colon)
        return -1;
    const char *h = text;
    size_t hl = (size_t)(colon - text);
    if (hl >= 2 && h[0] == '[' && h[hl - 1] == ']') {
        h++;
        hl -= 2;
    }
    if (hl >= hostlen)
        return -1;
    uint64_t p;
    if (cfg_parse_u64(colon + 1, 1, 65535, &p) != 0)
        return -1;
    memcpy(host, h, hl);
    host[hl] = '\0';
    *port = (int)p;
    return 0;
}
