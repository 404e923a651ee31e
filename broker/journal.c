/*  journal.c: an append-only file of checksummed records.
 *
 *  File: the 8-byte magic "TCJ1\n\0\0\0", then records
 *      [u32 length][u32 CRC-32C][length bytes: kind, payload]
 *  (little-endian). Opening reads every record in order and hands it to the
 *  caller; a torn record at the end (a crash in the middle of a write) is
 *  cut off, and so is anything after a record whose checksum fails. Appends
 *  are buffered and written by bk_journal_flush() (the broker flushes before
 *  it publishes or acknowledges anything); syncing is the syncer's job
 *  (syncer.c), off the loop.
 *
 *  A rewrite (compaction) builds PATH.compact beside the journal: a writer
 *  fills it with the state as of some offset of the journal and syncs it;
 *  the journal's records after that offset are copied after it; then every
 *  flush writes both files until the new one is synced and renamed over the
 *  old one (with its directory synced), and only then does it become the
 *  journal. Whatever PATH names at any moment holds every record written:
 *  a crash at any step restarts from a complete journal. Until the rename,
 *  PATH.compact is scratch, removed at the next open.
 *  The files are locked (flock) so two brokers can never share a journal.
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
#define S_WRITER_FLUSH (1u << 20)  /* a rewrite's writer writes every MiB, */
#define S_WRITER_SYNC  (16u << 20) /* and syncs every 16 MiB: no burst at the end */

struct bk_journal {
    int fd;
    char *path;
    buf_t wbuf;       /* records not yet written */
    uint64_t size;    /* bytes in the file, written */
    uint64_t base;    /* size right after the last rewrite (or open) */
    uint64_t lsn;     /* logical position: bytes written through this object */
    int unsynced;     /* written since the last bk_journal_sync() */
    size_t flush_at;  /* a writer: flush when the buffer reaches this (0: never) */
    uint64_t synced;  /* a writer: size at its last sync */
    int failed;       /* a writer: an automatic flush failed (errno in err) */
    int err;
    /* a rewrite in progress */
    int next_fd;      /* PATH.compact, -1: none */
    char *next_path;
    uint64_t next_size;
    int dual;         /* flushes write the next file too */
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

/*  PATH.compact, malloc'ed (NULL: out of memory). */
static char *
s_next_path(const char *path)
{
    size_t n = strlen(path) + sizeof ".compact";
    char *p = malloc(n);
    if (p)
        snprintf(p, n, "%s.compact", path);
    return p;
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

/*  Copies len bytes at offset from of in to out's position (for file systems
 *  without copy_file_range). Bytes copied, or -1. */
static ssize_t
s_copy_plain(int in, off_t from, int out, size_t len)
{
    char buf[65536];
    size_t n = len < sizeof buf ? len : sizeof buf;
    ssize_t got = pread(in, buf, n, from);
    if (got <= 0)
        return got < 0 ? -1 : 0;
    return s_write_all(out, buf, (size_t)got) == 0 ? got : -1;
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
    if (fd >= 0) {
        /* Scratch of a compaction a crash interrupted: never the journal. */
        char *leftover = s_next_path(path);
        if (leftover)
            (void)unlink(leftover);
        free(leftover);
    }
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
    j->size = j->base = j->lsn = size;
    j->next_fd = -1;
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
    unsigned char *h = (unsigned char *)j->wbuf.data + j->wbuf.len, *p = h + S_HEAD_LEN;
    *p++ = (unsigned char)kind;
    if (headlen)
        memcpy(p, head, headlen);
    if (bodylen)
        memcpy(p + headlen, body, bodylen);
    s_put32(h, (uint32_t)len);
    s_put32(h + 4, crc32c(0, h + S_HEAD_LEN, len));
    j->wbuf.len += S_HEAD_LEN + len;
    if (j->flush_at && j->wbuf.len >= j->flush_at && !j->failed &&
        (bk_journal_flush(j) != 0 ||
         (j->size - j->synced >= S_WRITER_SYNC && fdatasync(j->fd) != 0))) {
        j->failed = 1;
        j->err = errno;
    }
    if (j->flush_at && j->size - j->synced >= S_WRITER_SYNC)
        j->synced = j->size;
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
    if (j->dual && s_write_all(j->next_fd, j->wbuf.data, j->wbuf.len) != 0)
        return -1;
    j->size += j->wbuf.len;
    if (j->dual)
        j->next_size += j->wbuf.len;
    j->lsn += j->wbuf.len;
    j->unsynced = 1;
    buf_reset(&j->wbuf);
    return 0;
}

int
bk_journal_sync_dir(const char *path)
{
    char *copy = strdup(path);
    if (!copy)
        return -1;
    int fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    free(copy);
    if (fd < 0)
        return -1;
    int rc = fsync(fd);
    int e = errno;
    close(fd);
    errno = e;
    return rc;
}

int
bk_journal_install(const char *from, const char *to)
{
    if (rename(from, to) != 0)
        return -1;
    return bk_journal_sync_dir(to) == 0 ? 0 : 1;
}

int
bk_journal_sync(bk_journal_t *j)
{
    if (!j->unsynced)
        return 0;
    if (fdatasync(j->fd) != 0 || (j->dual && fdatasync(j->next_fd) != 0))
        return -1;
    j->unsynced = 0;
    return 0;
}

uint64_t
bk_journal_appended(const bk_journal_t *j)
{
    return j->lsn + j->wbuf.len;
}

uint64_t
bk_journal_written(const bk_journal_t *j)
{
    return j->lsn;
}

int
bk_journal_fd(const bk_journal_t *j)
{
    return j->fd;
}

const char *
bk_journal_path(const bk_journal_t *j)
{
    return j->path;
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

/* ---------------------------------------------------------------- rewrite */

int
bk_journal_next_open(bk_journal_t *j, char *err, size_t errlen)
{
    if (j->next_fd >= 0) {
        snprintf(err, errlen, "a rewrite is already in progress");
        return -1;
    }
    char *path = s_next_path(j->path);
    if (!path) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    int fd = s_open_locked(path, O_RDWR | O_CREAT | O_TRUNC, err, errlen);
    if (fd < 0) {
        free(path);
        return -1;
    }
    if (s_write_all(fd, S_MAGIC, S_MAGIC_LEN) != 0) {
        snprintf(err, errlen, "cannot write %s: %s", path, strerror(errno));
        close(fd);
        unlink(path);
        free(path);
        return -1;
    }
    j->next_fd = fd;
    j->next_path = path;
    j->next_size = S_MAGIC_LEN;
    return 0;
}

bk_journal_t *
bk_journal_next_writer(bk_journal_t *j)
{
    bk_journal_t *w = calloc(1, sizeof *w);
    if (!w)
        return NULL;
    w->fd = j->next_fd;
    w->next_fd = -1;
    w->flush_at = S_WRITER_FLUSH;
    buf_init(&w->wbuf);
    return w;
}

int
bk_journal_writer_close(bk_journal_t **w_p)
{
    bk_journal_t *w = *w_p;
    int rc = w->failed ? -1 : bk_journal_flush(w);
    int e = w->failed ? w->err : errno;
    if (rc == 0 && fdatasync(w->fd) != 0) {
        rc = -1;
        e = errno;
    }
    buf_free(&w->wbuf);
    free(w);
    *w_p = NULL;
    errno = e;
    return rc;
}

int
bk_journal_next_copy(bk_journal_t *j, uint64_t *from, uint64_t max)
{
    /* The writer wrote through the same open file: its offset is the end. */
    off_t end = lseek(j->next_fd, 0, SEEK_CUR);
    if (end < 0)
        return -1;
    j->next_size = (uint64_t)end;
    while (*from < j->size && max > 0) {
        size_t want = (size_t)(j->size - *from < max ? j->size - *from : max);
        loff_t in = (loff_t)*from;
        ssize_t n = copy_file_range(j->fd, &in, j->next_fd, NULL, want, 0);
        if (n < 0 && (errno == EXDEV || errno == ENOSYS || errno == EINVAL || errno == EOPNOTSUPP))
            n = s_copy_plain(j->fd, (off_t)*from, j->next_fd, want);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        *from += (uint64_t)n;
        j->next_size += (uint64_t)n;
        max -= (uint64_t)n;
    }
    return *from == j->size ? 1 : 0;
}

void
bk_journal_next_dual(bk_journal_t *j)
{
    j->dual = 1;
}

int
bk_journal_next_fd(const bk_journal_t *j)
{
    return j->next_fd;
}

const char *
bk_journal_next_path(const bk_journal_t *j)
{
    return j->next_path;
}

void
bk_journal_next_switch(bk_journal_t *j)
{
    close(j->fd);
    j->fd = j->next_fd;
    j->size = j->base = j->next_size;
    j->next_fd = -1;
    j->dual = 0;
    free(j->next_path);
    j->next_path = NULL;
}

void
bk_journal_next_abort(bk_journal_t *j)
{
    if (j->next_fd < 0)
        return;
    close(j->next_fd);
    (void)unlink(j->next_path);
    free(j->next_path);
    j->next_path = NULL;
    j->next_fd = -1;
    j->dual = 0;
}

int
bk_journal_rewrite(bk_journal_t *j, int (*writer)(void *arg, bk_journal_t *out), void *arg,
                   char *err, size_t errlen)
{
    if (bk_journal_flush(j) != 0) {
        snprintf(err, errlen, "write failed: %s", strerror(errno));
        return -1;
    }
    if (bk_journal_next_open(j, err, errlen) != 0)
        return -1;
    bk_journal_t *w = bk_journal_next_writer(j);
    uint64_t from = j->size; /* the writer writes the state as of here */
    int ok = w && writer(arg, w) == 0;
    if (w && bk_journal_writer_close(&w) != 0)
        ok = 0;
    /* Nothing was written meanwhile; the copy only finds the writer's end. */
    ok = ok && bk_journal_next_copy(j, &from, UINT64_MAX) == 1;
    int rc = -1;
    if (ok) {
        bk_journal_next_dual(j);
        rc = fdatasync(j->next_fd) == 0 ? bk_journal_install(j->next_path, j->path) : -1;
    }
    if (rc < 0) {
        snprintf(err, errlen, "compaction failed: %s", strerror(errno));
        bk_journal_next_abort(j);
        return -1;
    }
    bk_journal_next_switch(j);
    j->unsynced = 0;
    return rc; /* 1: renamed, but the directory could not be synced */
}

void
bk_journal_close(bk_journal_t **j_p)
{
    bk_journal_t *j = *j_p;
    if (!j)
        return;
    (void)bk_journal_flush(j);
    (void)bk_journal_sync(j);
    if (j->next_fd >= 0) {
        /* An unfinished rewrite. Were it renamed already, PATH is the new
         * file, which got every flush too (dual): either way complete. */
        close(j->next_fd);
        (void)unlink(j->next_path);
        free(j->next_path);
    }
    close(j->fd);
    buf_free(&j->wbuf);
    free(j->path);
    free(j);
    *j_p = NULL;
}
