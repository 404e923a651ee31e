/*  test_pool_config.c: taskcast-worker's kinds file (pool/config.c): a good
 *  file with comments and blank lines, and every refusal naming its line. */
#include <string.h>

#include "check.h"
#include "pool.h"

static int
s_parse(const char *text, pool_config_t *cfg, char *err, size_t errlen)
{
    err[0] = '\0';
    return pool_config_parse(cfg, text, strlen(text), err, errlen);
}

static void
test_good(void)
{
    pool_config_t cfg;
    char err[256];
    const char *text = "# kind   mode      command...\n"
                       "\n"
                       "render   per-job   /usr/bin/python3 examples/jobs/render.py --fast\n"
                       "   # indented comment\n"
                       "\tthumb\tkept\t/bin/cat\r\n"
                       "a.b-c_9 per-job /bin/true"; /* no final newline */
    CHECK(s_parse(text, &cfg, err, sizeof err) == 0);
    CHECK(cfg.n == 3);
    if (cfg.n == 3) {
        CHECK_STR(cfg.kinds[0].name, "render");
        CHECK(cfg.kinds[0].kept == 0 && cfg.kinds[0].line == 3);
        CHECK_STR(cfg.kinds[0].argv[0], "/usr/bin/python3");
        CHECK_STR(cfg.kinds[0].argv[1], "examples/jobs/render.py");
        CHECK_STR(cfg.kinds[0].argv[2], "--fast");
        CHECK(cfg.kinds[0].argv[3] == NULL);
        CHECK_STR(cfg.kinds[1].name, "thumb");
        CHECK(cfg.kinds[1].kept == 1 && cfg.kinds[1].line == 5);
        CHECK_STR(cfg.kinds[1].argv[0], "/bin/cat"); /* the \r is not part of it */
        CHECK(cfg.kinds[1].argv[1] == NULL);
        CHECK_STR(cfg.kinds[2].name, "a.b-c_9");
    }
    CHECK(pool_config_find(&cfg, "thumb", 5) == &cfg.kinds[1]);
    CHECK(pool_config_find(&cfg, "thum", 4) == NULL);
    CHECK(pool_config_find(&cfg, "render2", 7) == NULL);
    pool_config_free(&cfg);
    CHECK(cfg.n == 0 && cfg.kinds == NULL);
}

static void
test_refusals(void)
{
    static const struct {
        const char *text, *want;
    } cases[] = {
        {"render per-job /bin/true\nthumb sometimes /bin/true\n",
         "line 2: mode must be per-job or kept, not 'sometimes'"},
        {"# c\n\nrender per-job\n", "line 3: kind 'render' has no command"},
        {"render\n", "line 1: kind 'render' has no mode (per-job or kept) and no command"},
        {"render per-job /bin/true\n# x\nrender kept /bin/cat\n",
         "line 3: kind 'render' is already defined on line 1"},
        {"ren/der per-job /bin/true\n",
         "line 1: kind 'ren/der' must be 1 to 64 characters of A-Z a-z 0-9 _ . -"},
        {"# only comments\n\n", "no kinds defined"},
        {"", "no kinds defined"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        pool_config_t cfg;
        char err[256];
        CHECK(s_parse(cases[i].text, &cfg, err, sizeof err) == -1);
        CHECK_STR(err, cases[i].want);
        CHECK(cfg.n == 0 && cfg.kinds == NULL);
    }
    /* a kind of 65 characters */
    char text[128];
    memset(text, 'k', 65);
    strcpy(text + 65, " kept /bin/cat\n");
    pool_config_t cfg;
    char err[256];
    CHECK(s_parse(text, &cfg, err, sizeof err) == -1 && strstr(err, "line 1: kind") != NULL);
    /* a NUL byte inside a line */
    CHECK(pool_config_parse(&cfg, "a kept /bin/c\0t\n", 16, err, sizeof err) == -1);
    CHECK_STR(err, "line 1: a NUL byte");
}

static void
test_load(void)
{
    pool_config_t cfg;
    char err[512];
    CHECK(pool_config_load(&cfg, "/nonexistent/pool.conf", err, sizeof err) == -1);
    CHECK(strstr(err, "/nonexistent/pool.conf: No such file") != NULL);
}

int
main(void)
{
    test_good();
    test_refusals();
    test_load();
    return check_report();
}
