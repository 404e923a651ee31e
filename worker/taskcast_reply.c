/*  taskcast_reply.c: reads the broker's answer with the bounded reader. */
#include <string.h>

#include "mpread.h"
#include "taskcast_pack.h"

#define S_SKIP_DEPTH 16 /* nesting allowed in values of keys we do not know */

/* tc_copy_text: see taskcast_pack.h */
void
tc_copy_text(char *out, size_t outlen, const mp_value_t *v)
{
    size_t n = v->v.s.len < outlen - 1 ? v->v.s.len : outlen - 1;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)v->v.s.p[i];
        out[i] = (c < 0x20 || c == 0x7f) ? '?' : (char)c;
    }
    out[n] = '\0';
}

int
tc_reply_parse(const void *buf, size_t len, tc_reply_t *reply, int *has_pseq)
{
    memset(reply, 0, sizeof *reply);
    *has_pseq = 0;
    int has_ok = 0, has_seq = 0, has_error = 0;
    mp_reader_t r;
    mp_value_t v, k;
    mp_reader_init(&r, buf, len);
    if (mp_read(&r, &v) != 0 || v.type != MP_MAP)
        return -1;
    for (uint32_t i = 0, n = v.v.n; i < n; i++) {
        if (mp_read(&r, &k) != 0 || k.type != MP_STR)
            return -1;
        int known = mp_str_eq(&k, "ok") || mp_str_eq(&k, "pseq") || mp_str_eq(&k, "seq") ||
                    mp_str_eq(&k, "duplicate") || mp_str_eq(&k, "error") || mp_str_eq(&k, "detail");
        if (!known) { /* a later broker may say more: skip it */
            if (mp_skip(&r, S_SKIP_DEPTH) != 0)
                return -1;
            continue;
        }
        if (mp_read(&r, &v) != 0)
            return -1;
        if (mp_str_eq(&k, "ok") && v.type == MP_BOOL) {
            reply->ok = v.v.b != 0;
            has_ok = 1;
        }
        else if (mp_str_eq(&k, "pseq") && v.type == MP_UINT) {
            reply->pseq = v.v.u;
            *has_pseq = 1;
        }
        else if (mp_str_eq(&k, "seq") && v.type == MP_UINT) {
            reply->seq = v.v.u;
            has_seq = 1;
        }
        else if (mp_str_eq(&k, "duplicate") && v.type == MP_BOOL)
            reply->duplicate = v.v.b != 0;
        else if (mp_str_eq(&k, "error") && v.type == MP_STR) {
            tc_copy_text(reply->error, sizeof reply->error, &v);
            has_error = 1;
        }
        else if (mp_str_eq(&k, "detail") && v.type == MP_STR)
            tc_copy_text(reply->detail, sizeof reply->detail, &v);
        else
            return -1; /* a known key with a value of the wrong type */
    }
    if (mp_reader_left(&r) != 0 || !has_ok)
        return -1;
    if (reply->ok ? !(*has_pseq && has_seq) : !has_error)
        return -1;
    return 0;
}
