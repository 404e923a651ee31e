/*  frame.c: rendered JSON frames, shared by reference among sessions, and
 *  the batches that carry a sync answer to one session. */
#include <stdlib.h>
#include <string.h>

#include "event.h"
#include "frame.h"

gw_frame_t *
gw_frame_new(const char *json, size_t len, gw_frame_kind_t kind)
{
    gw_frame_t *f = malloc(sizeof *f + LWS_PRE + len);
    if (!f)
        return NULL;
    f->refs = 1;
    f->len = (uint32_t)len;
    f->seq = 0;
    f->gen = 0;
    f->kind = (uint8_t)kind;
    memcpy(f->buf + LWS_PRE, json, len);
    return f;
}

gw_frame_t *
gw_frame_ref(gw_frame_t *f)
{
    if (f)
        f->refs++;
    return f;
}

void
gw_frame_unref(gw_frame_t **f_p)
{
    gw_frame_t *f = *f_p;
    if (f && --f->refs == 0)
        free(f);
    *f_p = NULL;
}

void
gw_error_json(buf_t *out, const char *code, const char *message)
{
    buf_append_str(out, "{\"type\":\"error\",\"code\":");
    event_json_string(out, code, strlen(code));
    buf_append_str(out, ",\"message\":");
    event_json_string(out, message, strlen(message));
    buf_append_char(out, '}');
}

gw_frame_t *
gw_frame_error(const char *code, const char *message)
{
    buf_t b;
    buf_init(&b);
    gw_error_json(&b, code, message);
    gw_frame_t *f = buf_ok(&b) ? gw_frame_new(b.data, b.len, GW_FRAME_CONTROL) : NULL;
    buf_free(&b);
    return f;
}

gw_batch_t *
gw_batch_new(uint64_t seq)
{
    uint32_t cap = 8;
    gw_batch_t *b = malloc(sizeof *b + cap * sizeof b->frames[0]);
    if (b)
        *b = (gw_batch_t){.seq = seq, .cap = cap};
    return b;
}

int
gw_batch_add(gw_batch_t **batch_p, gw_frame_t *f)
{
    gw_batch_t *b = *batch_p;
    if (b->count == b->cap) {
        uint32_t cap = b->cap * 2;
        gw_batch_t *nb = realloc(b, sizeof *b + cap * sizeof b->frames[0]);
        if (!nb) {
            gw_frame_unref(&f);
            return -1;
        }
        nb->cap = cap;
        *batch_p = b = nb;
    }
    b->frames[b->count++] = f;
    return 0;
}

void
gw_batch_free(gw_batch_t **batch_p)
{
    gw_batch_t *b = *batch_p;
    if (!b)
        return;
    for (uint32_t i = 0; i < b->count; i++)
        gw_frame_unref(&b->frames[i]);
    free(b);
    *batch_p = NULL;
}
