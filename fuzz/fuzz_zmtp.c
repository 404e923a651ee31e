/*  fuzz_zmtp.c: the ZMTP 3.0 reader (common/zmtp.c) on what a peer sends,
 *  as the gateway's own ZeroMQ connections read it (gateway/zconn.c): a
 *  64-byte greeting, then frames; commands (READY first, then PING, ERROR
 *  or anything) and message frames.
 *
 *  - zmtp_read_frame(): a frame it returns lies inside the bytes, within
 *    max_len, with only known flags; "need more" asks for more than there
 *    is; fed the same stream in pieces (a buffer growing as zconn's does)
 *    it yields the same frames; what zmtp_put_frame() writes of a body reads
 *    back as that body. Tried with the gateway's bounds and with none.
 *  - zmtp_read_handshake() (greeting + READY, as zconn.c and the broker's
 *    zsrv.c read them) stays within the bytes, or refuses with a sentence.
 *  - zmtp_check_greeting(), zmtp_check_ready(), zmtp_command_is() on every
 *    greeting and command; a refusal says why; a PING's PONG is one
 *    well-formed PONG command.
 */
#include <string.h>

#include "fuzz.h"
#include "zmtp.h"

#define S_FRAMES_MAX 256 /* frames compared between whole and piecewise reads */

typedef struct {
    uint8_t flags;
    uint64_t off; /* body offset in the stream */
    uint64_t len;
} s_seen_t;

static void
s_command(const zmtp_frame_t *f)
{
    static const char *const types[] = {NULL, "XPUB", "ROUTER", "PUB"};
    const char *why = NULL;
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
        why = NULL;
        if (zmtp_check_ready(f->body, (size_t)f->len, types[i], &why) != 0)
            FUZZ_CHECK(why != NULL && why[0] != '\0');
        else
            FUZZ_CHECK(zmtp_command_is(f->body, (size_t)f->len, "READY"));
    }
    (void)zmtp_command_is(f->body, (size_t)f->len, "ERROR");
    if (zmtp_command_is(f->body, (size_t)f->len, "PING")) {
        buf_t out;
        buf_init(&out);
        zmtp_put_pong(&out, f->body, (size_t)f->len);
        zmtp_frame_t pong;
        uint64_t need;
        long long k = zmtp_read_frame((const uint8_t *)out.data, out.len, 64, &pong, &need);
        FUZZ_CHECK(buf_ok(&out) && k == (long long)out.len && (pong.flags & ZMTP_COMMAND));
        FUZZ_CHECK(zmtp_command_is(pong.body, (size_t)pong.len, "PONG"));
        size_t ctx = f->len > 7 ? (size_t)f->len - 7 : 0;
        ctx = ctx > 16 ? 16 : ctx;
        FUZZ_CHECK(pong.len == 5 + ctx && memcmp(pong.body + 5, f->body + 7, ctx) == 0);
        buf_free(&out);
    }
}

/*  What zmtp_put_frame() writes of a message frame reads back the same. */
static void
s_rewrite(const zmtp_frame_t *f)
{
    buf_t out;
    buf_init(&out);
    zmtp_put_frame(&out, f->body, (size_t)f->len, f->flags & ZMTP_MORE);
    zmtp_frame_t g;
    uint64_t need;
    long long k = zmtp_read_frame((const uint8_t *)out.data, out.len, f->len, &g, &need);
    FUZZ_CHECK(buf_ok(&out) && k == (long long)out.len && g.len == f->len);
    FUZZ_CHECK((g.flags & ~ZMTP_LONG) == (f->flags & ~ZMTP_LONG));
    FUZZ_CHECK(g.len == 0 || memcmp(g.body, f->body, (size_t)g.len) == 0);
    buf_free(&out);
}

/*  Reads frames from the whole of p[0, n) as one buffer. Returns how many
 *  were seen (at most S_FRAMES_MAX recorded) and the offset reached. */
static size_t
s_read_all(const uint8_t *p, size_t n, uint64_t max_len, s_seen_t *seen, size_t *end, int checks)
{
    size_t off = 0, count = 0;
    while (off < n) {
        zmtp_frame_t f;
        uint64_t need = 0;
        long long k = zmtp_read_frame(p + off, n - off, max_len, &f, &need);
        if (k < 0)
            break;
        if (k == 0) {
            FUZZ_CHECK(need > n - off);
            FUZZ_CHECK(need <= max_len || need - max_len <= 9); /* head + body */
            break;
        }
        FUZZ_CHECK((unsigned long long)k <= n - off && f.len <= max_len);
        FUZZ_CHECK(!(f.flags & ~(ZMTP_MORE | ZMTP_LONG | ZMTP_COMMAND)));
        FUZZ_CHECK(f.body == p + off + (f.flags & ZMTP_LONG ? 9 : 2));
        FUZZ_CHECK((unsigned long long)k == (uint64_t)(f.body - (p + off)) + f.len);
        if (checks) {
            if (f.flags & ZMTP_COMMAND)
                s_command(&f);
            else
                s_rewrite(&f);
        }
        if (count < S_FRAMES_MAX)
            seen[count] = (s_seen_t){f.flags, (uint64_t)(f.body - p), f.len};
        count++;
        off += (size_t)k;
    }
    *end = off;
    return count;
}

/*  The same stream arriving in pieces of the sizes in cuts[] (then the
 *  rest), read into a buffer that keeps what a frame still lacks, as
 *  gateway/zconn.c does. The same frames come out. */
static void
s_read_pieces(const uint8_t *p, size_t n, uint64_t max_len, const uint8_t *cuts, size_t ncuts,
              const s_seen_t *seen, size_t count)
{
    size_t have = 0, start = 0, got = 0; /* p[start, have) is buffered */
    for (size_t c = 0; have < n; c++) {
        size_t piece = c < ncuts ? (size_t)cuts[c] % 64 + 1 : n - have;
        have = have + piece < n ? have + piece : n;
        for (;;) {
            zmtp_frame_t f;
            uint64_t need;
            long long k = zmtp_read_frame(p + start, have - start, max_len, &f, &need);
            if (k <= 0)
                break;
            if (got < S_FRAMES_MAX && got < count)
                FUZZ_CHECK(seen[got].flags == f.flags && seen[got].len == f.len &&
                           seen[got].off == (uint64_t)(f.body - p));
            got++;
            start += (size_t)k;
        }
    }
    FUZZ_CHECK(got == count);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static s_seen_t seen[S_FRAMES_MAX];
    const char *why = NULL;
    /* The handshake as zconn and the broker read it: within the bytes, or
     * a refusal that says why. */
    zmtp_frame_t ready;
    long long hs = zmtp_read_handshake(data, size, "ROUTER", &ready, &why);
    FUZZ_CHECK(hs <= (long long)size);
    if (hs < 0)
        FUZZ_CHECK(why != NULL && why[0] != '\0');
    if (hs > 0)
        FUZZ_CHECK(zmtp_command_is(ready.body, (size_t)ready.len, "READY"));
    why = NULL;
    if (size < ZMTP_GREETING_LEN)
        return 0;
    if (zmtp_check_greeting(data, &why) != 0)
        FUZZ_CHECK(why != NULL && why[0] != '\0');
    const uint8_t *p = data + ZMTP_GREETING_LEN;
    size_t n = size - ZMTP_GREETING_LEN;
    /* The gateway's bounds (4096 for the handshake, its largest event
     * message after), and none at all. */
    static const uint64_t bounds[] = {4096, 65536 + 4096 + 2048, UINT64_MAX};
    for (size_t b = 0; b < sizeof bounds / sizeof bounds[0]; b++) {
        size_t end;
        size_t count = s_read_all(p, n, bounds[b], seen, &end, b == 0);
        /* the first greeting bytes double as the pieces' sizes */
        s_read_pieces(p, end, bounds[b], data + 12, 20, seen, count);
    }
    return 0;
}
