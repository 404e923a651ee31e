/*  fuzz_event.c: event_decode() (common/event.c) on arbitrary bytes, in the
 *  worker form and in the published form.
 *
 *  A refusal carries one of the stable EVENT_E_* codes and a printable
 *  sentence. For every event accepted:
 *  - event_render_json() succeeds, json_parse() accepts the frame (nested
 *    at most EVENT_DEPTH_MAX + 1 deep), and its type, task_id, status,
 *    message, seq and ts read back as the event's own;
 *  - event_put_published() writes exactly event_published_size() bytes, the
 *    same as event_pack_published() and as msgpack-c would (a reference
 *    packer here), and they decode in the published form to the same fields
 *    and render to the same frame (a round trip).
 *  Input: one worker or broker message, as the broker's ingest socket or a
 *  gateway's SUB socket receives it.
 */
#include <msgpack.h>
#include <string.h>

#include "event.h"
#include "fuzz.h"
#include "json.h"

static const char *const s_codes[] = {
    EVENT_E_MALFORMED,     EVENT_E_NOT_A_MAP,     EVENT_E_MISSING_FIELD,
    EVENT_E_WRONG_TYPE,    EVENT_E_INVALID_VALUE, EVENT_E_TOO_LARGE,
    EVENT_E_UNKNOWN_FIELD, EVENT_E_DUPLICATE_FIELD, EVENT_E_INVALID_UTF8};

static void
s_check_refusal(const event_error_t *err)
{
    int known = 0;
    for (size_t i = 0; i < sizeof s_codes / sizeof s_codes[0]; i++)
        known |= err->code && strcmp(err->code, s_codes[i]) == 0;
    FUZZ_CHECK(known);
    FUZZ_CHECK(err->detail[0] != '\0' && fuzz_printable(err->detail));
}

static int
s_text_eq(event_text_t a, event_text_t b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.p, b.p, a.len) == 0);
}

/*  The string member key of the frame's top object equals want. */
static void
s_check_member(const char *text, const json_tok_t *toks, const char *key, event_text_t want)
{
    static char copy[EVENT_MESSAGE_MAX + 1];
    int i = json_object_get(text, toks, 0, key);
    FUZZ_CHECK(i > 0 && toks[i].type == JSON_STRING);
    int n = json_string_copy(text, &toks[i], copy, sizeof copy);
    FUZZ_CHECK(n >= 0 && (uint32_t)n == want.len && memcmp(copy, want.p, want.len) == 0);
}

static void
s_check_number(const char *text, const json_tok_t *toks, const char *key, uint64_t want)
{
    int i = json_object_get(text, toks, 0, key);
    int64_t v;
    FUZZ_CHECK(i > 0 && toks[i].type == JSON_NUMBER);
    if (want <= INT64_MAX)
        FUZZ_CHECK(json_number_i64(text, &toks[i], &v) == 0 && (uint64_t)v == want);
}

/*  Renders ev and checks the frame as a browser (and json.c) reads it. */
static void
s_render(const event_t *ev, buf_t *out)
{
    buf_reset(out);
    FUZZ_CHECK(event_render_json(ev, out) == 0);
    size_t max = out->len + 1; /* every token takes at least one byte */
    json_tok_t *toks = malloc(max * sizeof *toks);
    FUZZ_CHECK(toks != NULL);
    int n = json_parse(out->data, out->len, toks, max, EVENT_DEPTH_MAX + 1);
    if (n < 1)
        fprintf(stderr, "json_parse: %d on %.*s\n", n, (int)out->len, out->data);
    FUZZ_CHECK(n >= 1 && toks[0].type == JSON_OBJECT);
    const char *t = out->data;
    int type = json_object_get(t, toks, 0, "type");
    FUZZ_CHECK(type > 0 && json_string_eq(t, &toks[type], "task"));
    s_check_member(t, toks, "task_id", ev->task_id);
    const char *status = event_status_name(ev->status);
    s_check_member(t, toks, "status", (event_text_t){status, (uint32_t)strlen(status)});
    if (ev->has_message)
        s_check_member(t, toks, "message", ev->message);
    else
        FUZZ_CHECK(json_object_get(t, toks, 0, "message") < 0);
    s_check_number(t, toks, "seq", ev->seq);
    if (ev->has_ts)
        s_check_number(t, toks, "ts", (uint64_t)ev->ts);
    FUZZ_CHECK((json_object_get(t, toks, 0, "data") > 0) == (ev->data != NULL));
    FUZZ_CHECK((json_object_get(t, toks, 0, "progress") > 0) == ev->has_progress);
    free(toks);
}

static int
s_progress_eq(const event_t *a, const event_t *b)
{
    if (a->has_progress != b->has_progress)
        return 0;
    if (!a->has_progress)
        return 1;
    const mp_value_t *x = &a->progress, *y = &b->progress;
    if (x->type != y->type)
        return 0;
    return x->type == MP_FLOAT ? x->v.f == y->v.f : x->v.u == y->v.u;
}

/*  The published form as msgpack-c writes it (what event_pack_published()
 *  did before common/event_pack.c wrote msgpack by hand): the reference the
 *  hand-written encoder must equal byte for byte. */
static void
s_reference_pack(const event_t *ev, int64_t ts, uint64_t seq, event_text_t epoch, buf_t *out)
{
    msgpack_packer pk;
    msgpack_packer_init(&pk, out, buf_msgpack_write);
#define S_STR(s, n) (msgpack_pack_str(&pk, (n)), msgpack_pack_str_body(&pk, (s), (n)))
#define S_KEY(lit)  S_STR(lit, sizeof(lit) - 1)
    msgpack_pack_map(&pk, 6 + (ev->has_progress != 0) + (ev->has_message != 0) + (ev->data != NULL));
    S_KEY("task_id");
    S_STR(ev->task_id.p, ev->task_id.len);
    S_KEY("user_id");
    S_STR(ev->user_id.p, ev->user_id.len);
    S_KEY("status");
    const char *status = event_status_name(ev->status);
    S_STR(status, strlen(status));
    if (ev->has_progress) {
        const mp_value_t *v = &ev->progress;
        S_KEY("progress");
        if (v->type == MP_UINT)
            msgpack_pack_uint64(&pk, v->v.u);
        else if (v->type == MP_INT)
            msgpack_pack_int64(&pk, v->v.i);
        else if ((double)(float)v->v.f == v->v.f)
            msgpack_pack_float(&pk, (float)v->v.f);
        else
            msgpack_pack_double(&pk, v->v.f);
    }
    if (ev->has_message) {
        S_KEY("message");
        S_STR(ev->message.p, ev->message.len);
    }
    if (ev->data) {
        S_KEY("data");
        buf_append(out, ev->data, ev->data_len);
    }
    S_KEY("ts");
    msgpack_pack_int64(&pk, ev->has_ts ? ev->ts : ts);
    S_KEY("seq");
    msgpack_pack_uint64(&pk, seq);
    S_KEY("epoch");
    S_STR(epoch.p, epoch.len);
#undef S_KEY
#undef S_STR
    FUZZ_CHECK(buf_ok(out));
}

/*  Packs ev in the published form with (ts, seq, epoch), decodes it back. */
static void
s_round_trip(const event_t *ev, int64_t ts, uint64_t seq, event_text_t epoch, buf_t *a, buf_t *b)
{
    buf_t packed, ref;
    buf_init(&packed);
    buf_init(&ref);
    FUZZ_CHECK(event_pack_published(ev, ts, seq, epoch.p, epoch.len, &packed) == 0);
    /* event_put_published() writes exactly event_published_size() bytes
     * (into a buffer of that size: ASan sees one byte more), the same as
     * event_pack_published() and as msgpack-c. */
    size_t size = event_published_size(ev, ts, seq, epoch.len);
    uint8_t *exact = malloc(size);
    FUZZ_CHECK(exact != NULL);
    FUZZ_CHECK(event_put_published(ev, ts, seq, epoch.p, epoch.len, exact) == size);
    FUZZ_CHECK(size == packed.len && memcmp(exact, packed.data, size) == 0);
    free(exact);
    s_reference_pack(ev, ts, seq, epoch, &ref);
    FUZZ_CHECK(ref.len == packed.len && memcmp(ref.data, packed.data, ref.len) == 0);
    buf_free(&ref);
    event_t back;
    event_error_t err;
    if (event_decode(&back, packed.data, packed.len, EVENT_FROM_BROKER, &err) != 0)
        fprintf(stderr, "the published form does not decode: %s: %s\n", err.code, err.detail);
    FUZZ_CHECK(err.code == NULL);
    FUZZ_CHECK(s_text_eq(back.task_id, ev->task_id) && s_text_eq(back.user_id, ev->user_id));
    FUZZ_CHECK(back.status == ev->status && s_progress_eq(&back, ev));
    FUZZ_CHECK(back.has_message == ev->has_message);
    if (ev->has_message)
        FUZZ_CHECK(s_text_eq(back.message, ev->message));
    FUZZ_CHECK((back.data != NULL) == (ev->data != NULL) && back.data_len == ev->data_len);
    if (ev->data)
        FUZZ_CHECK(memcmp(back.data, ev->data, ev->data_len) == 0);
    FUZZ_CHECK(back.has_ts && back.ts == (ev->has_ts ? ev->ts : ts));
    FUZZ_CHECK(back.seq == seq && s_text_eq(back.epoch, epoch));
    FUZZ_CHECK(!back.has_producer && !back.has_pseq);

    /* Both render to the same frame. */
    event_t stamped = *ev;
    stamped.seq = seq;
    stamped.has_ts = 1;
    stamped.ts = back.ts;
    s_render(&stamped, a);
    s_render(&back, b);
    FUZZ_CHECK(a->len == b->len && memcmp(a->data, b->data, a->len) == 0);
    buf_free(&packed);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    buf_t a, b;
    buf_init(&a);
    buf_init(&b);
    event_t ev;
    event_error_t err;

    if (event_decode(&ev, data, size, EVENT_FROM_WORKER, &err) == 0) {
        FUZZ_CHECK(err.code == NULL);
        FUZZ_CHECK(fuzz_within(ev.task_id.p, ev.task_id.len, data, size));
        FUZZ_CHECK(event_user_id_valid(ev.user_id.p, ev.user_id.len));
        FUZZ_CHECK(!ev.has_producer || ev.has_pseq);
        FUZZ_CHECK(!ev.data || fuzz_within(ev.data, ev.data_len, data, size));
        s_render(&ev, &a);
        static const char epoch[] = "8f3a2c1d9e7b6a50.1";
        uint64_t seq = ev.pseq ? ev.pseq : 1;
        s_round_trip(&ev, INT64_C(1700000000000), seq,
                     (event_text_t){epoch, (uint32_t)sizeof epoch - 1}, &a, &b);
    }
    else
        s_check_refusal(&err);

    if (event_decode(&ev, data, size, EVENT_FROM_BROKER, &err) == 0) {
        FUZZ_CHECK(err.code == NULL);
        FUZZ_CHECK(ev.has_ts && ev.seq >= 1 && ev.epoch.len >= 1);
        FUZZ_CHECK(!ev.has_producer && !ev.has_pseq);
        s_render(&ev, &a);
        s_round_trip(&ev, ev.ts, ev.seq, ev.epoch, &a, &b);
    }
    else
        s_check_refusal(&err);

    buf_free(&a);
    buf_free(&b);
    return 0;
}
