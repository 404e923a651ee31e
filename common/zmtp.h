/*  zmtp.h: the ZeroMQ wire protocol, ZMTP 3.0 with the NULL mechanism
 *  (rfc.zeromq.org/spec/23), as pure functions over bytes.
 *
 *  For a process that speaks ZeroMQ from its own event loop, without
 *  libzmq's I/O thread between the socket and the loop (the gateway's
 *  link to the broker: a SUB and a DEALER that connect to a libzmq XPUB
 *  and ROUTER). Nothing here does I/O or allocates beyond the caller's
 *  buf_t; the reader is bounds-checked and never trusts a length (it is
 *  fuzzed).
 *
 *    greeting   64 bytes: FF, 8 padding bytes, 7F, version 3.0, "NULL"
 *               padded to 20, as-server 0, 31 zero bytes
 *    READY      a command: 5 "READY", then properties
 *               [name length][name][4-byte big-endian value length][value]
 *    frames     [flags][size: 1 byte, or 8 bytes big-endian if LONG][body]
 *               flags: MORE 0x01, LONG 0x02, COMMAND 0x04
 *    SUB        a subscription is a message whose body is 0x01 + topic,
 *               an unsubscription 0x00 + topic (ZMTP 3.0)
 */
#ifndef TC_ZMTP_H
#define TC_ZMTP_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"

#define ZMTP_GREETING_LEN 64
#define ZMTP_MORE         0x01
#define ZMTP_LONG         0x02
#define ZMTP_COMMAND      0x04

/*  Appends our greeting. */
void zmtp_put_greeting(buf_t *out);
/*  Checks a peer's greeting: the signature, major version 3 and the NULL
 *  mechanism. 0, or -1 with a sentence. */
int zmtp_check_greeting(const uint8_t g[ZMTP_GREETING_LEN], const char **why);

/*  Appends a READY command announcing socket_type ("SUB", "DEALER"). */
void zmtp_put_ready(buf_t *out, const char *socket_type);
/*  Checks a command body: 0 if it is READY with Socket-Type peer_type
 *  (e.g. "XPUB"; NULL: any), or -1 with a sentence. */
int zmtp_check_ready(const uint8_t *body, size_t len, const char *peer_type, const char **why);
/*  1 if a command body is the named command ("PING", "ERROR", ...). */
int zmtp_command_is(const uint8_t *body, size_t len, const char *name);
/*  Appends a PONG answering a PING body (its context echoed). */
void zmtp_put_pong(buf_t *out, const uint8_t *ping, size_t len);

/*  Appends a frame: its head, then len bytes of data. */
void zmtp_put_frame(buf_t *out, const void *data, size_t len, int more);
/*  Appends a SUB's (un)subscription message for topic. */
void zmtp_put_subscription(buf_t *out, const void *topic, size_t len, int subscribe);

typedef struct zmtp_frame {
    uint8_t flags;
    const uint8_t *body; /* points into the caller's bytes */
    uint64_t len;
} zmtp_frame_t;

/*  Reads one frame from n bytes at p. Returns the bytes it takes (head and
 *  body), 0 if more bytes are needed (*need: how many in all, more than n,
 *  so a caller can grow its buffer), or -1 if a reserved flag bit is set or
 *  the body is longer than max_len (or than LLONG_MAX - 9 whatever max_len
 *  is). */
long long zmtp_read_frame(const uint8_t *p, size_t n, uint64_t max_len, zmtp_frame_t *f,
                          uint64_t *need);

/*  The peer's greeting and READY command at p (n bytes, the start of what
 *  it sent): the bytes they take, 0 if more are needed, or -1 with a
 *  sentence (a bad greeting, no READY, or a READY whose Socket-Type is not
 *  peer_type; NULL: any). *ready is the READY body (for more checks). */
long long zmtp_read_handshake(const uint8_t *p, size_t n, const char *peer_type,
                              zmtp_frame_t *ready, const char **why);

#endif
