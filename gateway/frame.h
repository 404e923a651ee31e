/*  frame.h: a rendered JSON text frame, shared by reference.
 *
 *  An event is rendered once per gateway into one frame that every session
 *  of its user sends; LWS_PRE bytes of headroom let libwebsockets write the
 *  WebSocket header in place. Single-threaded: a plain reference count.
 */
#ifndef TC_GATEWAY_FRAME_H
#define TC_GATEWAY_FRAME_H

#include <libwebsockets.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"

typedef enum {
    GW_FRAME_EVENT = 0, /* a task event: has seq and epoch generation */
    GW_FRAME_CONTROL    /* hello, pong, error */
} gw_frame_kind_t;

typedef struct gw_frame {
    uint32_t refs;
    uint32_t len; /* JSON bytes */
    uint64_t seq;
    uint32_t gen; /* the user's epoch generation it belongs to */
    uint8_t kind;
    unsigned char buf[]; /* LWS_PRE + len */
} gw_frame_t;

/*  Copies len bytes of JSON into a new frame (refs = 1). NULL on OOM. */
gw_frame_t *gw_frame_new(const char *json, size_t len, gw_frame_kind_t kind);
gw_frame_t *gw_frame_ref(gw_frame_t *f);
/*  Drops a reference (freeing the frame with the last) and sets *f_p NULL. */
void gw_frame_unref(gw_frame_t **f_p);

static inline unsigned char *
gw_frame_payload(gw_frame_t *f)
{
    return f->buf + LWS_PRE;
}

/*  Appends {"type":"error","code":CODE,"message":MSG}: the one error shape
 *  of frames and HTTP answers alike. */
void gw_error_json(buf_t *out, const char *code, const char *message);
/*  That JSON as a frame. NULL on OOM. */
gw_frame_t *gw_frame_error(const char *code, const char *message);

/*  A sync answer rendered for one session: the frames to send, then the
 *  seq the answer covered. */
typedef struct gw_batch {
    uint64_t seq;   /* the user's seq when the broker answered */
    uint32_t count; /* frames */
    uint32_t cap;
    uint32_t pos; /* next frame to send */
    gw_frame_t *frames[];
} gw_batch_t;

/*  An empty batch covering seq. NULL on OOM. */
gw_batch_t *gw_batch_new(uint64_t seq);
/*  Appends f (taking its reference), growing the batch. 0, or -1 on OOM
 *  (f is dropped). */
int gw_batch_add(gw_batch_t **batch_p, gw_frame_t *f);
void gw_batch_free(gw_batch_t **batch_p);

#endif
