/*  fuzz_jobs_wire.c: the jobs messages (common/jobs_wire.c) on arbitrary
 *  bytes: what the broker reads from a pool worker (and from any peer of its
 *  jobs socket: jobs_wire_type() picks the family), and what a worker reads
 *  from the broker.
 *
 *  What jobs_wire_type() finds is a string inside the message, and a read
 *  message is of that type; a sentence for a refusal is printable (the
 *  broker logs it). What jobs_wire_read() accepts has its required fields,
 *  texts, kinds, args and result inside the message, kinds that are valid
 *  and exactly kinds_n, a progress within 0..100; a started, release or
 *  progress packs again into bytes that read back to the same fields.
 */
#include <string.h>

#include "fuzz.h"
#include "jobs_wire.h"

static int
s_text_eq(event_text_t a, event_text_t b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.p, b.p, a.len) == 0);
}

static void
s_within(event_text_t t, const uint8_t *data, size_t size)
{
    if (t.len)
        FUZZ_CHECK(fuzz_within(t.p, t.len, data, size));
}

/*  1 if type names t. */
static int
s_is(jobs_type_t t, event_text_t type)
{
    const char *name = jobs_type_name(t);
    return strlen(name) == type.len && memcmp(name, type.p, type.len) == 0;
}

static void
s_kinds(const jobs_msg_t *m, const uint8_t *data, size_t size)
{
    size_t at = 0;
    uint32_t n = 0;
    event_text_t kind;
    while (jobs_kind_next(m, &at, &kind)) {
        FUZZ_CHECK(jobs_kind_valid(kind.p, kind.len) && fuzz_within(kind.p, kind.len, data, size));
        n++;
    }
    FUZZ_CHECK(n == m->kinds_n);
}

/*  A task message packs again (jobs_pack_*() take C strings). */
static void
s_again(const jobs_msg_t *m)
{
    char tid[EVENT_TASK_ID_MAX + 1], msg[EVENT_MESSAGE_MAX + 1];
    if (memchr(m->task_id.p, '\0', m->task_id.len) ||
        (m->message.len && memchr(m->message.p, '\0', m->message.len)))
        return;
    memcpy(tid, m->task_id.p, m->task_id.len);
    tid[m->task_id.len] = '\0';
    memcpy(msg, m->message.p ? m->message.p : "", m->message.len);
    msg[m->message.len] = '\0';
    buf_t b;
    buf_init(&b);
    if (m->type == JOBS_PROGRESS)
        jobs_pack_progress(&b, tid, m->attempt, m->has_progress ? &m->progress : NULL,
                           m->message.p ? msg : NULL);
    else
        jobs_pack_task(&b, m->type, tid, m->attempt);
    jobs_msg_t back;
    char err[160];
    FUZZ_CHECK(buf_ok(&b) && jobs_wire_read(b.data, b.len, &back, err, sizeof err) == 0);
    FUZZ_CHECK(back.type == m->type && s_text_eq(back.task_id, m->task_id));
    FUZZ_CHECK(back.attempt == m->attempt);
    if (m->type == JOBS_PROGRESS) {
        FUZZ_CHECK(s_text_eq(back.message, m->message));
        FUZZ_CHECK((back.message.p == NULL) == (m->message.p == NULL));
        FUZZ_CHECK(back.has_progress == m->has_progress);
        if (m->has_progress)
            FUZZ_CHECK(back.progress.is_float == m->progress.is_float &&
                       back.progress.u == m->progress.u && back.progress.f == m->progress.f);
    }
    buf_free(&b);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    event_text_t type = {0};
    int is_map = -1;
    char err[160];
    int trc = jobs_wire_type(data, size, &type, &is_map, err, sizeof err);
    FUZZ_CHECK(is_map == 0 || is_map == 1);
    if (trc == 0) {
        FUZZ_CHECK(is_map == 1);
        s_within(type, data, size);
    }
    else
        FUZZ_CHECK(fuzz_printable(err));

    jobs_msg_t m;
    if (jobs_wire_read(data, size, &m, err, sizeof err) != 0) {
        FUZZ_CHECK(fuzz_printable(err));
        if (trc == 0) /* the type is read first */
            FUZZ_CHECK(m.type == JOBS_UNKNOWN || s_is(m.type, type));
        else
            FUZZ_CHECK(m.type == JOBS_UNKNOWN);
        return 0;
    }
    FUZZ_CHECK(trc == 0 && m.type != JOBS_UNKNOWN);
    FUZZ_CHECK(s_is(m.type, type));
    const event_text_t texts[] = {m.task_id, m.user_id, m.kind,   m.name,
                                  m.status,  m.reason,  m.message};
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++)
        s_within(texts[i], data, size);
    if (m.args)
        FUZZ_CHECK(fuzz_within(m.args, m.args_len, data, size));
    if (m.result)
        FUZZ_CHECK(fuzz_within(m.result, m.result_len, data, size));
    if (m.has_progress)
        FUZZ_CHECK(m.progress.is_float ? m.progress.f >= 0.0 && m.progress.f <= 100.0
                                       : m.progress.u <= 100);
    s_kinds(&m, data, size);
    if (m.type == JOBS_HELLO)
        FUZZ_CHECK(m.kinds != NULL && m.has_concurrency);
    if (m.type == JOBS_STARTED || m.type == JOBS_PROGRESS || m.type == JOBS_DONE ||
        m.type == JOBS_RELEASE) {
        FUZZ_CHECK(m.task_id.len > 0 && m.has_attempt);
        if (m.type != JOBS_DONE)
            s_again(&m);
    }
    return 0;
}
