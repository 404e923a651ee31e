/*  wsc.h: the pieces of a WebSocket client (RFC 6455) that do no I/O.
 *
 *  tc-load owns the sockets and the event loop; here are the handshake
 *  (key, expected accept, parsing the HTTP answer), the frame header parser
 *  for server frames, the builder of masked client frames, and the cheap
 *  search for the publisher's timestamp in an event frame.
 */
#ifndef TC_BENCH_WSC_H
#define TC_BENCH_WSC_H

#include <stddef.h>
#include <stdint.h>

#define WSC_KEY_LEN      24 /* base64 of 16 random bytes */
#define WSC_ACCEPT_LEN   28 /* base64 of a SHA-1 */
#define WSC_FRAME_HDRMAX 14 /* 2 + 8 (64-bit length) + 4 (mask) */

enum {
    WSC_OP_CONT = 0x0,
    WSC_OP_TEXT = 0x1,
    WSC_OP_BINARY = 0x2,
    WSC_OP_CLOSE = 0x8,
    WSC_OP_PING = 0x9,
    WSC_OP_PONG = 0xA
};

/*  The Sec-WebSocket-Key for 16 random bytes (NUL-terminated). */
void wsc_key_encode(const uint8_t raw[16], char key[WSC_KEY_LEN + 1]);
/*  The Sec-WebSocket-Accept a server must answer to key (NUL-terminated). */
void wsc_accept_for(const char *key, char accept[WSC_ACCEPT_LEN + 1]);

typedef struct wsc_http {
    int status;           /* 101 for a WebSocket */
    int upgrade;          /* an "Upgrade: websocket" header was present */
    const char *accept;   /* the Sec-WebSocket-Accept value (in the input), or NULL */
    size_t accept_len;
} wsc_http_t;

/*  Parses an HTTP/1.1 response head at the start of buf. Returns the head's
 *  length including the blank line, 0 if it is not complete yet, -1 if it
 *  is not an HTTP response. */
long wsc_http_parse(const char *buf, size_t len, wsc_http_t *out);

typedef struct wsc_frame {
    int fin;
    int opcode;
    int masked;
    uint8_t mask[4];
    size_t hdr_len;       /* bytes of header */
    uint64_t payload_len; /* bytes of payload after it */
} wsc_frame_t;

/*  Parses the frame header at the start of buf. Returns 1 when the header is
 *  complete (the payload may not be), 0 if more bytes are needed, -1 on a
 *  protocol error (reserved bits set, unknown opcode, a control frame that is
 *  fragmented or longer than 125 bytes, a 64-bit length with the top bit). */
int wsc_frame_parse(const uint8_t *buf, size_t len, wsc_frame_t *f);

/*  Writes a final, masked client frame with this opcode and payload to out
 *  (room for len + WSC_FRAME_HDRMAX bytes) and returns its length. */
size_t wsc_frame_build(uint8_t *out, int opcode, const void *payload, size_t len, uint32_t mask);

/*  Unmasks (or masks) len bytes in place; offset is the position of p in
 *  the payload (the mask repeats every 4 bytes). */
void wsc_unmask(uint8_t *p, size_t len, const uint8_t mask[4], uint64_t offset);

/*  Finds the first "bt": in a text payload and parses the unsigned integer
 *  after it. Returns 1 and sets *bt, or 0 if there is none. */
int wsc_find_bt(const char *p, size_t len, uint64_t *bt);

/*  1 if a text payload is a hello frame ({"type":"hello" at its start). */
int wsc_is_hello(const char *p, size_t len);

#endif
