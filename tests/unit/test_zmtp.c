/*  test_zmtp.c: the ZMTP 3.0 codec (common/zmtp.c): our greeting and READY
 *  as a libzmq peer reads them, frames short and long, incomplete input
 *  (how many bytes are needed), reserved flags and oversized bodies
 *  refused, READY properties bounds-checked, subscriptions, PONG. The
 *  end-to-end suite talks to a real libzmq broker through it. */
#include <limits.h>
#include <stdint.h>
#include <string.h>

#include "check.h"
#include "zmtp.h"

static void
test_greeting_and_ready(void)
{
    buf_t b;
    buf_init(&b);
    zmtp_put_greeting(&b);
    CHECK(b.len == ZMTP_GREETING_LEN);
    const uint8_t *g = (const uint8_t *)b.data;
    const char *why = NULL;
    CHECK(g[0] == 0xFF && g[9] == 0x7F && g[10] == 3 && memcmp(g + 12, "NULL", 5) == 0);
    CHECK(zmtp_check_greeting(g, &why) == 0);
    uint8_t bad[ZMTP_GREETING_LEN];
    memcpy(bad, g, sizeof bad);
    bad[10] = 2;
    CHECK(zmtp_check_greeting(bad, &why) != 0 && why);
    memcpy(bad, g, sizeof bad);
    memcpy(bad + 12, "CURVE", 5);
    CHECK(zmtp_check_greeting(bad, &why) != 0);
    memcpy(bad, g, sizeof bad);
    bad[9] = 0;
    CHECK(zmtp_check_greeting(bad, &why) != 0);
    memcpy(bad, g, sizeof bad);
    bad[11] = 1; /* 3.1 is fine */
    CHECK(zmtp_check_greeting(bad, &why) == 0);

    buf_reset(&b);
    zmtp_put_ready(&b, "DEALER");
    zmtp_frame_t f;
    uint64_t need;
    CHECK(zmtp_read_frame((const uint8_t *)b.data, b.len, 4096, &f, &need) == (long long)b.len);
    CHECK(f.flags == ZMTP_COMMAND && zmtp_command_is(f.body, f.len, "READY"));
    CHECK(zmtp_check_ready(f.body, f.len, "DEALER", &why) == 0);
    CHECK(zmtp_check_ready(f.body, f.len, NULL, &why) == 0);
    CHECK(zmtp_check_ready(f.body, f.len, "ROUTER", &why) != 0);
    /* every cut of the properties is refused, never read past */
    for (size_t n = 6; n < f.len; n++)
        CHECK(zmtp_check_ready(f.body, n, NULL, &why) != 0);
    /* a READY without Socket-Type; another command */
    static const uint8_t untyped[] = {5, 'R', 'E', 'A', 'D', 'Y', 8, 'I', 'd', 'e', 'n', 't',
                                      'i', 't', 'y', 0, 0, 0, 0};
    CHECK(zmtp_check_ready(untyped, sizeof untyped, NULL, &why) != 0);
    static const uint8_t ping[] = {4, 'P', 'I', 'N', 'G', 0, 10, 'c', 't', 'x'};
    CHECK(zmtp_check_ready(ping, sizeof ping, NULL, &why) != 0);
    CHECK(zmtp_command_is(ping, sizeof ping, "PING"));
    CHECK(!zmtp_command_is(ping, 3, "PING"));
    /* a property with a huge declared value length */
    static const uint8_t huge[] = {5, 'R', 'E', 'A', 'D', 'Y', 11, 'S', 'o', 'c', 'k', 'e', 't',
                                   '-', 'T', 'y', 'p', 'e', 0xFF, 0xFF, 0xFF, 0xFF, 'X'};
    CHECK(zmtp_check_ready(huge, sizeof huge, NULL, &why) != 0);

    buf_reset(&b);
    zmtp_put_pong(&b, ping, sizeof ping);
    CHECK(zmtp_read_frame((const uint8_t *)b.data, b.len, 4096, &f, &need) > 0);
    CHECK(f.flags == ZMTP_COMMAND && f.len == 8 && memcmp(f.body, "\4PONGctx", 8) == 0);
    buf_free(&b);
}

static void
test_frames(void)
{
    buf_t b;
    buf_init(&b);
    char big[300];
    memset(big, 'z', sizeof big);
    zmtp_put_frame(&b, "topic", 5, 1);
    zmtp_put_frame(&b, big, sizeof big, 0);
    const uint8_t *p = (const uint8_t *)b.data;
    zmtp_frame_t f;
    uint64_t need;
    long long k = zmtp_read_frame(p, b.len, 1 << 20, &f, &need);
    CHECK(k == 7 && f.flags == ZMTP_MORE && f.len == 5 && memcmp(f.body, "topic", 5) == 0);
    long long k2 = zmtp_read_frame(p + k, b.len - (size_t)k, 1 << 20, &f, &need);
    CHECK(k2 == 9 + 300 && f.flags == ZMTP_LONG && f.len == 300);
    /* incomplete: 0, and how much is needed */
    CHECK(zmtp_read_frame(p, 1, 1 << 20, &f, &need) == 0 && need == 2);
    CHECK(zmtp_read_frame(p + k, 5, 1 << 20, &f, &need) == 0 && need == 9);
    CHECK(zmtp_read_frame(p + k, 100, 1 << 20, &f, &need) == 0 && need == 309);
    /* too long, reserved flags */
    CHECK(zmtp_read_frame(p + k, b.len - (size_t)k, 299, &f, &need) == -1);
    uint8_t res[] = {0x08, 0};
    CHECK(zmtp_read_frame(res, sizeof res, 10, &f, &need) == -1);
    uint8_t giant[9] = {ZMTP_LONG, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF};
    CHECK(zmtp_read_frame(giant, sizeof giant, 1u << 30, &f, &need) == -1);
    /* found by fuzz/fuzz_zmtp.c: with no bound (max_len UINT64_MAX) a
     * 2^64 - 1 byte body made 9 + len wrap, "need 8 bytes" of 9 */
    need = 0;
    CHECK(zmtp_read_frame(giant, sizeof giant, UINT64_MAX, &f, &need) == -1);
    giant[1] = 0x7F;
    CHECK(zmtp_read_frame(giant, sizeof giant, UINT64_MAX, &f, &need) == -1);
    uint8_t huge[9] = {ZMTP_LONG, 0x7F, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xF6};
    CHECK(zmtp_read_frame(huge, sizeof huge, UINT64_MAX, &f, &need) == 0 &&
          need == (uint64_t)LLONG_MAX);
    uint8_t empty[2] = {0, 0};
    CHECK(zmtp_read_frame(empty, 2, 10, &f, &need) == 2 && f.len == 0);

    buf_reset(&b);
    zmtp_put_subscription(&b, "u1\0", 3, 1);
    zmtp_put_subscription(&b, "u1\0", 3, 0);
    p = (const uint8_t *)b.data;
    k = zmtp_read_frame(p, b.len, 64, &f, &need);
    CHECK(k == 6 && f.flags == 0 && f.len == 4 && memcmp(f.body, "\1u1\0", 4) == 0);
    CHECK(zmtp_read_frame(p + k, b.len - (size_t)k, 64, &f, &need) == 6 && f.body[0] == 0);
    buf_free(&b);
}

/*  A whole handshake: greeting + READY, read in every cut. */
static void
test_handshake(void)
{
    buf_t b;
    buf_init(&b);
    zmtp_put_greeting(&b);
    zmtp_put_ready(&b, "ROUTER");
    const uint8_t *p = (const uint8_t *)b.data;
    zmtp_frame_t ready;
    const char *why = NULL;
    for (size_t n = 0; n < b.len; n++)
        CHECK(zmtp_read_handshake(p, n, "ROUTER", &ready, &why) == 0);
    CHECK(zmtp_read_handshake(p, b.len, "ROUTER", &ready, &why) == (long long)b.len);
    CHECK(zmtp_command_is(ready.body, ready.len, "READY"));
    CHECK(zmtp_read_handshake(p, b.len, NULL, &ready, &why) == (long long)b.len);
    why = NULL;
    CHECK(zmtp_read_handshake(p, b.len, "XPUB", &ready, &why) == -1 && why && why[0]);
    /* a bad greeting; a message frame where READY must be */
    buf_t bad;
    buf_init(&bad);
    zmtp_put_greeting(&bad);
    bad.data[0] = 0;
    why = NULL;
    CHECK(zmtp_read_handshake((const uint8_t *)bad.data, bad.len, NULL, &ready, &why) == -1 &&
          why);
    buf_reset(&bad);
    zmtp_put_greeting(&bad);
    zmtp_put_frame(&bad, "READY", 5, 0);
    why = NULL;
    CHECK(zmtp_read_handshake((const uint8_t *)bad.data, bad.len, NULL, &ready, &why) == -1 &&
          why);
    buf_free(&bad);
    buf_free(&b);
}

int
main(void)
{
    test_greeting_and_ready();
    test_frames();
    test_handshake();
    return check_report();
}
