/*  config.c: the kinds file, one kind per line:
 *      # kind   mode      command...
 *      render   per-job   /usr/bin/python3 examples/jobs/render.py
 *  Fields are separated by spaces or tabs; the command is split on them too
 *  (no shell, no quoting). Blank lines and lines starting with '#' are
 *  skipped. Every error names its line.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pool.h"

#define S_FILE_MAX (1 << 20)
#define S_ARGS_MAX 256

static void
s_kind_free(pool_kind_t *k)
{
    if (k->argv) {
        for (char **a = k->argv; *a; a++)
            free(*a);
        free(k->argv);
    }
    k->argv = NULL;
}

void
pool_config_free(pool_config_t *cfg)
{
    for (size_t i = 0; i < cfg->n; i++)
        s_kind_free(&cfg->kinds[i]);
    free(cfg->kinds);
    cfg->kinds = NULL;
    cfg->n = 0;
}

const pool_kind_t *
pool_config_find(const pool_config_t *cfg, const char *kind, size_t len)
{
    for (size_t i = 0; i < cfg->n; i++)
        if (strlen(cfg->kinds[i].name) == len && memcmp(cfg->kinds[i].name, kind, len) == 0)
            return &cfg->kinds[i];
    return NULL;
}

static int
s_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r';
}

/*  Splits one line into words (pointers into the line, which is modified). */
static size_t
s_words(char *line, char **words, size_t max)
{
    size_t n = 0;
    char *p = line;
    for (;;) {
        while (s_space(*p))
            p++;
        if (!*p)
            return n;
        if (n == max)
            return max + 1;
        words[n++] = p;
        while (*p && !s_space(*p))
            p++;
        if (*p)
            *p++ = '\0';
    }
}

/*  One non-comment line into k. 0, or -1 with a sentence in err. */
static int
s_line(pool_kind_t *k, char *line, int lineno, char *err, size_t errlen)
{
    char *w[S_ARGS_MAX + 2];
    size_t n = s_words(line, w, S_ARGS_MAX + 2);
    if (n > S_ARGS_MAX + 2) {
        snprintf(err, errlen, "line %d: more than %d command words", lineno, S_ARGS_MAX);
        return -1;
    }
    if (!jobs_kind_valid(w[0], strlen(w[0]))) {
        snprintf(err, errlen,
                 "line %d: kind '%.64s' must be 1 to %d characters of "
                 "A-Z a-z 0-9 _ . -",
                 lineno, w[0], JOBS_KIND_MAX);
        return -1;
    }
    if (n < 2) {
        snprintf(err, errlen, "line %d: kind '%s' has no mode (per-job or kept) and no command",
                 lineno, w[0]);
        return -1;
    }
    if (strcmp(w[1], "per-job") != 0 && strcmp(w[1], "kept") != 0) {
        snprintf(err, errlen, "line %d: mode must be per-job or kept, not '%.64s'", lineno, w[1]);
        return -1;
    }
    if (n < 3) {
        snprintf(err, errlen, "line %d: kind '%s' has no command", lineno, w[0]);
        return -1;
    }
    memset(k, 0, sizeof *k);
    strcpy(k->name, w[0]);
    k->kept = strcmp(w[1], "kept") == 0;
    k->line = lineno;
    k->argv = calloc(n - 2 + 1, sizeof *k->argv);
    if (!k->argv)
        goto oom;
    for (size_t i = 2; i < n; i++)
        if (!(k->argv[i - 2] = strdup(w[i])))
            goto oom;
    return 0;
oom:
    s_kind_free(k);
    snprintf(err, errlen, "line %d: out of memory", lineno);
    return -1;
}

int
pool_config_parse(pool_config_t *cfg, const char *text, size_t len, char *err, size_t errlen)
{
    memset(cfg, 0, sizeof *cfg);
    int lineno = 0;
    size_t pos = 0;
    char *line = NULL;
    while (pos < len) {
        lineno++;
        const char *nl = memchr(text + pos, '\n', len - pos);
        size_t n = nl ? (size_t)(nl - (text + pos)) : len - pos;
        char *tmp = realloc(line, n + 1);
        if (!tmp) {
            snprintf(err, errlen, "line %d: out of memory", lineno);
            goto fail;
        }
        line = tmp;
        memcpy(line, text + pos, n);
        line[n] = '\0';
        pos += n + (nl != NULL);
        if (memchr(line, '\0', n)) {
            snprintf(err, errlen, "line %d: a NUL byte", lineno);
            goto fail;
        }
        char *p = line;
        while (s_space(*p))
            p++;
        if (!*p || *p == '#')
            continue;
        pool_kind_t k;
        if (s_line(&k, p, lineno, err, errlen) != 0)
            goto fail;
        const pool_kind_t *dup = pool_config_find(cfg, k.name, strlen(k.name));
        if (dup) {
            snprintf(err, errlen, "line %d: kind '%s' is already defined on line %d", lineno,
                     k.name, dup->line);
            s_kind_free(&k);
            goto fail;
        }
        pool_kind_t *grown = realloc(cfg->kinds, (cfg->n + 1) * sizeof *grown);
        if (!grown) {
            s_kind_free(&k);
            snprintf(err, errlen, "line %d: out of memory", lineno);
            goto fail;
        }
        cfg->kinds = grown;
        cfg->kinds[cfg->n++] = k;
    }
    free(line);
    if (cfg->n == 0) {
        snprintf(err, errlen, "no kinds defined");
        return -1;
    }
    return 0;
fail:
    free(line);
    pool_config_free(cfg);
    return -1;
}

int
pool_config_load(pool_config_t *cfg, const char *path, char *err, size_t errlen)
{
    memset(cfg, 0, sizeof *cfg);
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    char *text = malloc(S_FILE_MAX + 1);
    size_t n = text ? fread(text, 1, S_FILE_MAX + 1, f) : 0;
    int bad = !text || ferror(f) || n > S_FILE_MAX;
    fclose(f);
    if (bad) {
        snprintf(err, errlen, "%s: %s", path,
                 !text            ? "out of memory"
                 : n > S_FILE_MAX ? "larger than 1 MiB"
                                  : "read error");
        free(text);
        return -1;
    }
    char inner[200];
    int rc = pool_config_parse(cfg, text, n, inner, sizeof inner);
    free(text);
    if (rc != 0)
        snprintf(err, errlen, "%s: %s", path, inner);
    return rc;
}
