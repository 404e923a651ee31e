/*  test_wsc.c: the WebSocket client pieces: SHA-1, the handshake, frame
 *  headers with 7-, 16- and 64-bit lengths, masking, the "bt" search. */
#include <sodium.h>
#include <stdint.h>
#include <string.h>

#include "check.h"
#include "sha1.h"
#include "wsc.h"

static void
s_hex(const uint8_t *p, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++)
        sprintf(out + 2 * i, "%02x", p[i]);
}

static void
test_sha1(void)
{
    uint8_t d[SHA1_LEN];
    char hex[2 * SHA1_LEN + 1];
    sha1_digest("abc", 3, d);
    s_hex(d, SHA1_LEN, hex);
    CHECK_STR(hex, "a9993e364706816aba3e25717850c26c9cd0d89d");
    sha1_digest("", 0, d);
    s_hex(d, SHA1_LEN, hex);
    CHECK_STR(hex, "da39a3ee5e6b4b0d3255bfef95601890afd80709");
    /* 56 bytes: the length needs a second padding block. */
    const char *two = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    sha1_digest(two, strlen(two), d);
    s_hex(d, SHA1_LEN, hex);
    CHECK_STR(hex, "84983e441c3bd26ebaae4aa1f95129e5e54670f1");
}

static void
test_handshake(void)
{
    /* RFC 6455 section 1.3's example. */
    char accept[WSC_ACCEPT_LEN + 1];
    wsc_accept_for("dGhlIHNhbXBsZSBub25jZQ==", accept);
    CHECK_STR(accept, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    const uint8_t raw[16] = "the sample nonce";
    char key[WSC_KEY_LEN + 1];
    wsc_key_encode(raw, key);
    CHECK_STR(key, "dGhlIHNhbXBsZSBub25jZQ==");

    const char *ok = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: WebSocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Accept:  s3pPLMBiTxaQ9kYGzzhZRbK+xOo= \r\n"
                     "\r\n\x81\x02hi";
    wsc_http_t h;
    long n = wsc_http_parse(ok, strlen(ok), &h);
    CHECK(n == (long)strlen(ok) - 4);
    CHECK(h.status == 101 && h.upgrade && h.accept_len == WSC_ACCEPT_LEN &&
          memcmp(h.accept, accept, WSC_ACCEPT_LEN) == 0);
    CHECK(wsc_http_parse(ok, 40, &h) == 0); /* incomplete */
    const char *no = "HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n";
    CHECK(wsc_http_parse(no, strlen(no), &h) > 0 && h.status == 403 && !h.accept);
    CHECK(wsc_http_parse("SSH-2.0-x\r\n\r\n", 13, &h) == -1);
}

static void
test_frames(void)
{
    wsc_frame_t f;
    const uint8_t small[] = {0x81, 0x05, 'h', 'e', 'l', 'l', 'o'};
    CHECK(wsc_frame_parse(small, 1, &f) == 0);
    CHECK(wsc_frame_parse(small, sizeof small, &f) == 1);
    CHECK(f.fin && f.opcode == WSC_OP_TEXT && !f.masked && f.hdr_len == 2 && f.payload_len == 5);
    const uint8_t mid[] = {0x81, 126, 0x01, 0x00};
    CHECK(wsc_frame_parse(mid, 3, &f) == 0);
    CHECK(wsc_frame_parse(mid, 4, &f) == 1 && f.hdr_len == 4 && f.payload_len == 256);
    const uint8_t big[] = {0x82, 127, 0, 0, 0, 0, 0, 1, 0, 0};
    CHECK(wsc_frame_parse(big, 9, &f) == 0);
    CHECK(wsc_frame_parse(big, 10, &f) == 1 && f.hdr_len == 10 && f.payload_len == 65536);
    const uint8_t huge[] = {0x82, 127, 0x80, 0, 0, 0, 0, 0, 0, 0};
    CHECK(wsc_frame_parse(huge, sizeof huge, &f) == -1);
    const uint8_t rsv[] = {0xC1, 0x00};
    CHECK(wsc_frame_parse(rsv, sizeof rsv, &f) == -1);
    const uint8_t frag_ping[] = {0x09, 0x00};
    CHECK(wsc_frame_parse(frag_ping, sizeof frag_ping, &f) == -1);
    const uint8_t close[] = {0x88, 0x02, 0x11, 0x29}; /* 4393 */
    CHECK(wsc_frame_parse(close, sizeof close, &f) == 1 && f.opcode == WSC_OP_CLOSE);

    /* A built client frame parses back, masked, with the payload intact. */
    uint8_t out[70000 + WSC_FRAME_HDRMAX];
    static char payload[70000];
    memset(payload, 'p', sizeof payload);
    size_t lens[] = {0, 5, 125, 126, 65535, 65536, 70000};
    for (size_t k = 0; k < sizeof lens / sizeof lens[0]; k++) {
        size_t n = wsc_frame_build(out, WSC_OP_PONG, payload, lens[k], 0xA1B2C3D4u);
        CHECK(wsc_frame_parse(out, n, &f) == (lens[k] <= 125 ? 1 : -1)); /* control <= 125 */
        n = wsc_frame_build(out, WSC_OP_TEXT, payload, lens[k], 0xA1B2C3D4u);
        CHECK(wsc_frame_parse(out, n, &f) == 1 && f.masked && f.payload_len == lens[k] &&
              f.hdr_len + lens[k] == n);
        wsc_unmask(out + f.hdr_len, lens[k], f.mask, 0);
        CHECK(memcmp(out + f.hdr_len, payload, lens[k]) == 0);
    }
}

static void
test_bt(void)
{
    const char *ev = "{\"type\":\"task\",\"seq\":3,\"data\":{\"bt\":123456789012,\"pad\":\"x\"}}";
    uint64_t bt = 0;
    CHECK(wsc_find_bt(ev, strlen(ev), &bt) == 1 && bt == 123456789012u);
    CHECK(wsc_find_bt("{\"bt\": 42}", 10, &bt) == 1 && bt == 42);
    CHECK(wsc_find_bt("{\"type\":\"hello\"}", 16, &bt) == 0);
    CHECK(wsc_find_bt("{\"bt\":\"x\"}", 10, &bt) == 0);
    CHECK(wsc_find_bt("{\"bt\":", 6, &bt) == 0);
    CHECK(wsc_is_hello("{\"type\":\"hello\",\"user_id\":\"u1\"}", 31));
    CHECK(!wsc_is_hello("{\"type\":\"task\"}", 15));
}

int
main(void)
{
    if (sodium_init() < 0)
        return 1;
    test_sha1();
    test_handshake();
    test_frames();
    test_bt();
    return check_report();
}
