/*  sha1.h: SHA-1 (FIPS 180-4), only for the WebSocket handshake
 *  (Sec-WebSocket-Accept, RFC 6455 section 4.2.2). libsodium has no SHA-1.
 */
#ifndef TC_BENCH_SHA1_H
#define TC_BENCH_SHA1_H

#include <stddef.h>
#include <stdint.h>

#define SHA1_LEN 20

void sha1_digest(const void *data, size_t len, uint8_t out[SHA1_LEN]);

#endif
