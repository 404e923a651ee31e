/*  journal.c: an append-only file of checksummed records.
 *
 *  File: the 8-byte magic "TCJ1\n\0\0\0", then records
 *      [u32 length][u32 CRC-32C][length bytes: kind, payload]
 *  (little-endian). Opening reads every record in order and hands it to the
 *  caller; a torn record at the end (a crash in the middle of a write) is
 *  cut off, and so is anything after a record whose checksum fails. Appends
 *  are buffered and written by bk_journal_flush() (the broker flushes before
 *  it publishes or acknowledges anything), and synced to disk by
 *  bk_journal_sync() (once a second). bk_journal_rewrite() replaces the file
 *  with a compact one atomically (write, fsync, rename, fsync directory).
 *  The file is locked (flock) so two brokers can never share a journal.
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "broker.h"
#include "crc32c.h"

#define S_MAGIC      "TCJ1\n\0\0\0"
#define S_MAGIC_LEN  8
#define S_HEAD_LEN   8
#define S_RECORD_MAX (64u << 20)

struct bk_journal {
    int fd;
    char *path;
    buf_t wbuf;       /* records not yet written */
    uint64_t size;    /* bytes in the file, written */
    uint64_t base;    /* size right after the last rewrite (or open) */
    int unsynced;     /* written since the last fdatasync */
    int dir_unsynced; /* renamed by a rewrite, directory not yet synced */
};

static void
s_put32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
    p[2] = (unsigned char)(v >> 16);
    p[3] = (unsigned char)(v >> 24);
}

static uint32_t
s_get32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static int
s_write_all(int fd, const void *data, size_t len)
{
    const char *p = data;
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

static int
s_open_locked(const char *path, int flags, char *err, size_t errlen)
{
    int fd = open(path, flags | O_CLOEXEC, 0600);
    if (fd < 0) {
        snprintf(err, errlen, "cannot open the journal %s: %s", path, strerror(errno));
        return -1;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        snprintf(err, errlen, "the journal %s is in use by another broker", path);
        close(fd);
        return -1;
    }
    return fd;
}

/*  Reads every record; returns the offset after the last good one, or -1
 *  if the file is not a journal or the caller refused a record. */
static long long
s_replay(const unsigned char *map, size_t size, bk_journal_replay_fn fn, void *arg, char *err,
         size_t errlen)
{
    if (size < S_MAGIC_LEN || memcmp(map, S_MAGIC, S_MAGIC_LEN) != 0) {
        snprintf(err, errlen, "not a taskcast journal (bad magic)");
        return -1;
    }
    size_t off = S_MAGIC_LEN;
    while (size - off >= S_HEAD_LEN) {
        uint32_t len = s_get32(map + off), crc = s_get32(map + off + 4);
        if (len == 0 || len > S_RECORD_MAX || len > size - off - S_HEAD_LEN)
            break;
        const unsigned char *rec = map + off + S_HEAD_LEN;
        if (crc32c(0, rec, len) != crc)
            break;
        if (fn(arg, rec[0], rec + 1, len - 1, err, errlen) != 0)
            return -1;
        off += S_HEAD_LEN + len;
    }
    return (long long)off;
}

int
bk_journal_open(bk_journal_t **out, const char *path, bk_journal_replay_fn fn, void *arg,
                uint64_t *dropped, char *err, size_t errlen)
{
    *out = NULL;
    *dropped = 0;
    int fd = s_open_locked(path, O_RDWR | O_CREAT, err, errlen);
    if (fd < 0)
        return -1;
    struct stat st;
    if (fstat(fd, &st) != 0) {
        snprintf(err, errlen, "cannot stat the journal %s: %s", path, strerror(errno));
        close(fd);
        return -1;
    }
    uint64_t size = (uint64_t)st.st_size;
    if (size == 0) {
        if (s_write_all(fd, S_MAGIC, S_MAGIC_LEN) != 0) {
            snprintf(err, errlen, "cannot write the journal %s: %s", path, strerror(errno));
            close(fd);
            return -1;
        }
        size = S_MAGIC_LEN;
    }
    else {
        void *map = mmap(NULL, (size_t)size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (map == MAP_FAILED) {
            snprintf(err, errlen, "cannot read the journal %s: %s", path, strerror(errno));
            close(fd);
            return -1;
        }
        char why[200] = "";
        long long good = s_replay(map, (size_t)size, fn, arg, why, sizeof why);
        munmap(map, (size_t)size);
        if (good < 0) {
            snprintf(err, errlen, "journal %s: %s", path, why);
            close(fd);
            return -1;
        }
        if ((uint64_t)good < size) {
            /* A torn or damaged tail: what follows the last whole record was
             * never acknowledged (records are acknowledged after they are
             * written whole), so cutting it off loses nothing promised. */
            if (ftruncate(fd, (off_t)good) != 0) {
                snprintf(err, errlen, "cannot truncate the journal %s: %s", path, strerror(errno));
                close(fd);
                return -1;
            }
            *dropped = size - (uint64_t)good;
            size = (uint64_t)good;
        }
    }
    if (lseek(fd, 0, SEEK_END) < 0) {
        close(fd);
        return -1;
    }
    bk_journal_t *j = calloc(1, sizeof *j);
    if (!j || !(j->path = strdup(path))) {
        free(j);
        close(fd);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    j->fd = fd;
    j->size = j->base = size;
    buf_init(&j->wbuf);
    *out = j;
    return 0;
}

void
bk_journal_append(bk_journal_t *j, int kind, const void *head, size_t headlen, const void *body,
                  size_t bodylen)
{
    size_t len = 1 + headlen + bodylen;
    if (buf_reserve(&j->wbuf, S_HEAD_LEN + len) != 0)
        return; /* oom is reported by bk_journal_flush() */
    unsigned char *h = (unsigned char *)j->wbuf.data + j->wbuf.len;
    unsigned char k = (unsigned char)kind;
    j->wbuf.len += S_HEAD_LEN;
    buf_append(&j->wbuf, &k, 1);
    buf_append(&j->wbuf, head, headlen);
    buf_append(&j->wbuf, body, bodylen);
    s_put32(h, (uint32_t)len);
    s_put32(h + 4, crc32c(0, h + S_HEAD_LEN, len));
}

int
bk_journal_flush(bk_journal_t *j)
{
    if (!buf_ok(&j->wbuf)) {
        errno = ENOMEM;
        return -1;
    }
    if (j->wbuf.len == 0)
        return 0;
    if (s_write_all(j->fd, j->wbuf.data, j->wbuf.len) != 0)
        return -1;
    j->size += j->wbuf.len;
    j->unsynced = 1;
    buf_reset(&j->wbuf);
    return 0;
}

static int
s_sync_dir(const char *path)
{
    char *copy = strdup(path);
    if (!copy)
        return -1;
    int fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    free(copy);
    if (fd < 0)
        return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

int
bk_journal_sync(bk_journal_t *j)
{
    if (j->dir_unsynced && s_sync_dir(j->path) == 0)
        j->dir_unsynced = 0;
    if (!j->unsynced)
        return j->dir_unsynced ? -1 : 0;
    j->unsynced = 0;
    return fdatasync(j->fd) != 0 || j->dir_unsynced ? -1 : 0;
}

int
bk_journal_wants_rewrite(const bk_journal_t *j, uint64_t min_bytes)
{
    uint64_t limit = j->base * 2 > min_bytes ? j->base * 2 : min_bytes;
    return j->size > limit;
}

uint64_t
bk_journal_size(const bk_journal_t *j)
{
    return j->size;
}

int
bk_journal_rewrite(bk_journal_t *j, int (*writer)(void *arg, bk_journal_t *out), void *arg,
                   char *err, size_t errlen)
{
    if (bk_journal_flush(j) != 0) {
        snprintf(err, errlen, "write failed: %s", strerror(errno));
        return -1;
    }
    size_t plen = strlen(j->path) + 16;
    char *tmp = malloc(plen);
    if (!tmp) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    snprintf(tmp, plen, "%s.compact", j->path);
    bk_journal_t next = {.path = tmp};
    buf_init(&next.wbuf);
    next.fd = s_open_locked(tmp, O_RDWR | O_CREAT | O_TRUNC, err, errlen);
    int ok = next.fd >= 0;
    if (ok) {
        buf_append(&next.wbuf, S_MAGIC, S_MAGIC_LEN);
        ok = writer(arg, &next) == 0 && bk_journal_flush(&next) == 0 && fdatasync(next.fd) == 0 &&
             rename(tmp, j->path) == 0;
        if (!ok)
            snprintf(err, errlen, "compaction failed: %s", strerror(errno));
    }
    buf_free(&next.wbuf);
    if (!ok) {
        if (next.fd >= 0) {
            close(next.fd);
            unlink(tmp);
        }
        free(tmp);
        return -1;
    }
    free(tmp);
    /* The new file is the journal now: every later record goes there. */
    close(j->fd);
    j->fd = next.fd;
    j->size = j->base = next.size;
    j->unsynced = 0;
    j->dir_unsynced = s_sync_dir(j->path) != 0; /* retried by bk_journal_sync() */
    return j->dir_unsynced ? 1 : 0;
}

void
bk_journal_close(bk_journal_t **j_p)
{
    bk_journal_t *j = *j_p;
    if (!j)
        return;
    (void)bk_journal_flush(j);
    (void)bk_journal_sync(j);
    close(j->fd);
    buf_free(&j->wbuf);
    free(j->path);
    free(j);
    *j_p = NULL;
}
