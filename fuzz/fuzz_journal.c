/*  fuzz_journal.c: the broker's journal replay (broker/journal.c and
 *  broker/persist.c) on a journal file of arbitrary bytes, through the
 *  same entry point the broker starts with, bk_persist_open(), on a file
 *  in a temporary directory (in /dev/shm when there is one).
 *
 *  The first input byte picks how the rest becomes the file:
 *    even  the bytes as they are;
 *    odd   records [u16 little-endian length][kind, payload] written with
 *          the journal's magic and each record's length and CRC-32C (so
 *          what the records mean is reached, not only the checksums); a
 *          last record cut short stays a torn tail.
 *  The journal is either refused with a printable sentence or replayed;
 *  one that replayed is compacted (bk_persist_compact()) and the compacted
 *  file must replay too, to as many users and history entries.
 *
 *  Only broker.h's entry points are used, as tests/unit/test_persist.c
 *  does: the state, the journal and the idempotency window of a broker_t.
 */
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "broker.h"
#include "crc32c.h"
#include "fuzz.h"

#define S_WINDOW 16 /* idempotency pairs kept */

static char s_dir[96], s_path[128];

#define S_PREFIX "taskcast-fuzz-journal-"

/*  Removes the journal directory dir and what a run leaves in it. */
static void
s_remove(const char *dir)
{
    char p[160];
    snprintf(p, sizeof p, "%s/journal", dir);
    unlink(p);
    snprintf(p, sizeof p, "%s/journal.compact", dir); /* what a rewrite leaves */
    unlink(p);
    rmdir(dir);
}

static void
s_cleanup(void)
{
    s_remove(s_dir);
}

/*  A run that crashed (or found something) exits without atexit(): its
 *  directory is removed by the next run, once its process is gone. */
static void
s_remove_stale(const char *tmp)
{
    DIR *d = opendir(tmp);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        char *end;
        if (strncmp(e->d_name, S_PREFIX, strlen(S_PREFIX)) != 0)
            continue;
        long pid = strtol(e->d_name + strlen(S_PREFIX), &end, 10);
        if (*end == '\0' && pid > 0 && kill((pid_t)pid, 0) != 0 && errno == ESRCH) {
            char dir[sizeof s_dir];
            snprintf(dir, sizeof dir, "%s/%s", tmp, e->d_name);
            s_remove(dir);
        }
    }
    closedir(d);
}

int LLVMFuzzerInitialize(int *argc, char ***argv);

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    const char *tmp = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : getenv("TMPDIR");
    tmp = tmp ? tmp : "/tmp";
    s_remove_stale(tmp);
    snprintf(s_dir, sizeof s_dir, "%s/" S_PREFIX "%d", tmp, (int)getpid());
    FUZZ_CHECK(mkdir(s_dir, 0700) == 0);
    snprintf(s_path, sizeof s_path, "%s/journal", s_dir);
    atexit(s_cleanup);
    return 0;
}

static void
s_put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

/*  The journal file the input stands for, into out. */
static void
s_make_file(const uint8_t *data, size_t size, buf_t *out)
{
    if (size > 0 && (data[0] & 1)) {
        buf_append(out, "TCJ1\n\0\0\0", 8);
        size_t off = 1;
        while (size - off >= 2) {
            size_t len = (size_t)data[off] | (size_t)data[off + 1] << 8;
            off += 2;
            size_t have = len < size - off ? len : size - off;
            uint8_t head[8];
            s_put32(head, (uint32_t)len);
            s_put32(head + 4, crc32c(0, data + off, have));
            buf_append(out, head, sizeof head);
            buf_append(out, data + off, have);
            off += have;
        }
    }
    else if (size > 1)
        buf_append(out, data + 1, size - 1);
}

/*  Writes the journal file from the input; 0, or -1. */
static int
s_write_file(const uint8_t *data, size_t size)
{
    buf_t file;
    buf_init(&file);
    s_make_file(data, size, &file);
    int rc = -1;
    if (buf_ok(&file)) {
        FILE *f = fopen(s_path, "wb");
        FUZZ_CHECK(f != NULL);
        if (file.len)
            fwrite(file.data, 1, file.len, f);
        rc = fclose(f) == 0 ? 0 : -1;
    }
    buf_free(&file);
    return rc;
}

/*  A broker_t with only what the journal needs. */
static int
s_open(broker_t *bk, char *err, size_t errlen)
{
    bk_limits_t lim = {
        .retention_ms = 3600 * 1000,
        .history_per_user = 4,
        .history_bytes = 64 * 1024,
        .tasks_per_user = 8,
        .state_bytes = 64 * 1024,
        .max_users = 16,
    };
    memset(bk, 0, sizeof *bk);
    bk->sigfd = -1;
    log_init(&bk->log, "fuzz_journal", LOG_ERROR);
    FUZZ_CHECK(bk_state_init(&bk->state, &lim) == 0);
    return bk_persist_open(bk, s_path, S_WINDOW, err, errlen);
}

static void
s_close(broker_t *bk)
{
    bk_journal_close(&bk->journal);
    bk_dedup_destroy(&bk->dedup);
    bk_state_destroy(&bk->state);
}

static int
s_count_user(void *arg, const bk_user_t *u)
{
    (*(size_t *)arg)++;
    return 0;
}

static int
s_count_hist(void *arg, const bk_hist_t *h)
{
    (*(size_t *)arg)++;
    return 0;
}

static void
s_count(const broker_t *bk, size_t *users, size_t *hist)
{
    *users = *hist = 0;
    bk_state_each_user(&bk->state, s_count_user, users);
    bk_state_each_history(&bk->state, s_count_hist, hist);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    broker_t bk;
    char err[512] = "";
    if (s_write_file(data, size) != 0)
        return 0;
    if (s_open(&bk, err, sizeof err) != 0) {
        FUZZ_CHECK(err[0] != '\0' && fuzz_printable(err));
        s_close(&bk);
        unlink(s_path);
        return 0;
    }
    FUZZ_CHECK(bk.journal != NULL && bk.dedup != NULL);
    size_t users, hist, users2, hist2;
    s_count(&bk, &users, &hist);
    FUZZ_CHECK(bk_persist_compact(&bk, err, sizeof err) == 0);
    s_close(&bk);

    broker_t again;
    if (s_open(&again, err, sizeof err) != 0)
        fprintf(stderr, "the compacted journal is refused: %s\n", err);
    FUZZ_CHECK(again.journal != NULL);
    s_count(&again, &users2, &hist2);
    if (users2 != users || hist2 != hist)
        fprintf(stderr, "users %zu -> %zu, history %zu -> %zu\n", users, users2, hist, hist2);
    FUZZ_CHECK(users2 == users && hist2 == hist);
    s_close(&again);
    unlink(s_path);
    return 0;
}
