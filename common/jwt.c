/*  jwt.c: JWS compact serialization, HS256 and EdDSA, with libsodium.
 *
 *  Order of checks in jwt_verify: shape (three non-empty parts), header
 *  (JSON object, no duplicate names, no "crit", alg matching a configured
 *  key), signature, then the claims. Nothing from the payload is read
 *  before the signature has been verified.
 */
#include "jwt.h"

#include <inttypes.h>
#include <limits.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"

#define S_BIN_MAX   (JWT_TOKEN_MAX / 4 * 3 + 3) /* a decoded part of a token */
#define S_MAX_TOKS  256                         /* JSON tokens in header or claims */
#define S_MAX_DEPTH 16
#define S_HS256_LEN crypto_auth_hmacsha256_BYTES
#define S_ED_LEN    crypto_sign_BYTES

/*  DER SubjectPublicKeyInfo of an Ed25519 key, up to the 32 key bytes
 *  (RFC 8410): SEQUENCE { SEQUENCE { OID 1.3.101.112 } BIT STRING }. */
static const unsigned char s_spki_prefix[12] = {0x30, 0x2a, 0x30, 0x05, 0x06, 0x03,
                                                0x2b, 0x65, 0x70, 0x03, 0x21, 0x00};

typedef enum { S_ALG_HS256, S_ALG_EDDSA } s_alg_t;

/*  Strict base64url without padding; the whole input must decode. */
static int
s_b64url_decode(const char *in, size_t inlen, unsigned char *out, size_t outmax, size_t *outlen)
{
    const char *end = NULL;
    if (sodium_base642bin(out, outmax, in, inlen, NULL, outlen, &end,
                          sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0 ||
        end != in + inlen)
        return -1;
    return 0;
}

/*  1 if two members of the object share a name after unescaping. RFC 7515
 *  section 4 allows rejecting them, which is safer than picking one. */
static int
s_has_duplicate_names(const char *text, const json_tok_t *toks, int obj)
{
    char name[S_BIN_MAX];
    uint32_t k = (uint32_t)obj + 1;
    for (uint32_t i = 0; i < toks[obj].count; i++) {
        int n = json_string_copy(text, &toks[k], name, sizeof name);
        /* A name with a NUL in it cannot be compared as a C string: such a
         * token is refused outright. */
        if (n < 0 || memchr(name, '\0', (size_t)n))
            return 1;
        uint32_t j = toks[k + 1].next;
        for (uint32_t m = i + 1; m < toks[obj].count; m++) {
            if (json_string_eq(text, &toks[j], name))
                return 1;
            j = toks[j + 1].next;
        }
        k = toks[k + 1].next;
    }
    return 0;
}

/*  Decodes a base64url part into bin (S_BIN_MAX bytes) and parses it as a
 *  JSON object with unique member names. */
static int
s_decode_object(const char *part, size_t partlen, unsigned char *bin, json_tok_t *toks)
{
    size_t len;
    if (s_b64url_decode(part, partlen, bin, S_BIN_MAX, &len) != 0)
        return -1;
    const char *text = (const char *)bin;
    if (json_parse(text, len, toks, S_MAX_TOKS, S_MAX_DEPTH) < 1 || toks[0].type != JSON_OBJECT ||
        s_has_duplicate_names(text, toks, 0))
        return -1;
    return 0;
}

/*  Picks the algorithm from the header. */
static jwt_status_t
s_read_header(const jwt_keys_t *keys, const char *part, size_t partlen, s_alg_t *alg)
{
    unsigned char bin[S_BIN_MAX];
    json_tok_t toks[S_MAX_TOKS];
    if (s_decode_object(part, partlen, bin, toks) != 0)
        return JWT_MALFORMED;
    const char *text = (const char *)bin;
    /* "crit" names extensions that must be understood; this verifier
     * understands none, so such a token is malformed for it. */
    if (json_object_get(text, toks, 0, "crit") >= 0)
        return JWT_MALFORMED;
    int a = json_object_get(text, toks, 0, "alg");
    if (a < 0 || toks[a].type != JSON_STRING)
        return JWT_MALFORMED;
    if (keys->secret && json_string_eq(text, &toks[a], "HS256"))
        *alg = S_ALG_HS256;
    else if (keys->has_ed25519 && json_string_eq(text, &toks[a], "EdDSA"))
        *alg = S_ALG_EDDSA;
    else
        return JWT_BAD_ALG;
    return JWT_OK;
}

static void
s_hmac(const unsigned char *key, size_t keylen, const void *msg, size_t len,
       unsigned char mac[S_HS256_LEN])
{
    crypto_auth_hmacsha256_state st;
    crypto_auth_hmacsha256_init(&st, key, keylen);
    crypto_auth_hmacsha256_update(&st, msg, len);
    crypto_auth_hmacsha256_final(&st, mac);
    sodium_memzero(&st, sizeof st);
}

static jwt_status_t
s_check_signature(const jwt_keys_t *keys, s_alg_t alg, const char *signed_part, size_t signed_len,
                  const char *sig_part, size_t sig_partlen)
{
    unsigned char sig[S_BIN_MAX];
    size_t len;
    if (s_b64url_decode(sig_part, sig_partlen, sig, sizeof sig, &len) != 0)
        return JWT_MALFORMED;
    if (alg == S_ALG_HS256) {
        unsigned char mac[S_HS256_LEN];
        s_hmac(keys->secret, keys->secret_len, signed_part, signed_len, mac);
        int bad = len != sizeof mac || sodium_memcmp(mac, sig, sizeof mac) != 0;
        sodium_memzero(mac, sizeof mac);
        return bad ? JWT_BAD_SIGNATURE : JWT_OK;
    }
    if (len != S_ED_LEN || crypto_sign_verify_detached(sig, (const unsigned char *)signed_part,
                                                       signed_len, keys->ed25519_pk) != 0)
        return JWT_BAD_SIGNATURE;
    return JWT_OK;
}

/*  Reads an optional NumericDate claim. 1 if present, 0 if absent, -1 if
 *  not a number in int64 range. */
static int
s_read_date(const char *text, const json_tok_t *toks, const char *name, int64_t *out)
{
    int i = json_object_get(text, toks, 0, name);
    if (i < 0)
        return 0;
    return json_number_i64(text, &toks[i], out) == 0 ? 1 : -1;
}

/*  sub: a string of 1..JWT_SUB_MAX bytes without NUL, or an integer. */
static int
s_read_sub(const char *text, const json_tok_t *toks, jwt_claims_t *c)
{
    int i = json_object_get(text, toks, 0, "sub");
    if (i < 0)
        return -1;
    const json_tok_t *t = &toks[i];
    if (t->type == JSON_STRING) {
        int n = json_string_copy(text, t, c->sub, sizeof c->sub);
        if (n < 1 || memchr(c->sub, '\0', (size_t)n))
            return -1;
        c->sub_len = (size_t)n;
        return 0;
    }
    int64_t v;
    if (t->type != JSON_NUMBER || memchr(text + t->start, '.', t->end - t->start) ||
        memchr(text + t->start, 'e', t->end - t->start) ||
        memchr(text + t->start, 'E', t->end - t->start) || json_number_i64(text, t, &v) != 0)
        return -1;
    c->sub_len = (size_t)snprintf(c->sub, sizeof c->sub, "%" PRId64, v);
    return 0;
}

static jwt_status_t
s_read_claims(const char *part, size_t partlen, int64_t now_s, jwt_claims_t *c)
{
    unsigned char bin[S_BIN_MAX];
    json_tok_t toks[S_MAX_TOKS];
    if (s_decode_object(part, partlen, bin, toks) != 0)
        return JWT_MALFORMED;
    const char *text = (const char *)bin;
    int e = s_read_date(text, toks, "exp", &c->exp);
    if (e == 0)
        return JWT_MISSING_EXP;
    c->has_nbf = s_read_date(text, toks, "nbf", &c->nbf);
    c->has_iat = s_read_date(text, toks, "iat", &c->iat);
    if (e < 0 || c->has_nbf < 0 || c->has_iat < 0 || s_read_sub(text, toks, c) != 0)
        return JWT_BAD_CLAIMS;
    if (now_s >= c->exp)
        return JWT_EXPIRED;
    if (c->has_nbf && now_s < c->nbf)
        return JWT_NOT_YET_VALID;
    /* iat - now > skew, written so that it cannot overflow */
    if (c->has_iat && c->iat > now_s && (uint64_t)c->iat - (uint64_t)now_s > JWT_IAT_SKEW_S)
        return JWT_NOT_YET_VALID;
    int r = json_object_get(text, toks, 0, "role");
    c->admin = r >= 0 && json_string_eq(text, &toks[r], "admin");
    c->service = r >= 0 && json_string_eq(text, &toks[r], "service");
    return JWT_OK;
}

jwt_status_t
jwt_verify(const jwt_keys_t *keys, const char *token, size_t len, int64_t now_s,
           jwt_claims_t *claims)
{
    if (claims)
        memset(claims, 0, sizeof *claims);
    if (!token || len == 0)
        return JWT_MISSING;
    if (len > JWT_TOKEN_MAX)
        return JWT_MALFORMED;
    const char *d1 = memchr(token, '.', len);
    const char *d2 = d1 ? memchr(d1 + 1, '.', (size_t)(token + len - d1 - 1)) : NULL;
    if (!d2 || memchr(d2 + 1, '.', (size_t)(token + len - d2 - 1)) || d1 == token || d2 == d1 + 1 ||
        d2 + 1 == token + len)
        return JWT_MALFORMED;
    s_alg_t alg;
    jwt_status_t st = s_read_header(keys, token, (size_t)(d1 - token), &alg);
    if (st != JWT_OK)
        return st;
    st = s_check_signature(keys, alg, token, (size_t)(d2 - token), d2 + 1,
                           (size_t)(token + len - d2 - 1));
    if (st != JWT_OK)
        return st;
    jwt_claims_t c;
    memset(&c, 0, sizeof c);
    st = s_read_claims(d1 + 1, (size_t)(d2 - d1 - 1), now_s, &c);
    if (st == JWT_OK && claims)
        *claims = c;
    return st;
}

const char *
jwt_status_message(jwt_status_t status)
{
    switch (status) {
    case JWT_OK:
        return "ok";
    case JWT_MISSING:
        return "missing token";
    case JWT_MALFORMED:
        return "malformed token";
    case JWT_BAD_ALG:
        return "token algorithm not accepted";
    case JWT_BAD_SIGNATURE:
        return "bad token signature";
    case JWT_EXPIRED:
        return "token expired";
    case JWT_NOT_YET_VALID:
        return "token not yet valid";
    case JWT_MISSING_EXP:
        return "token has no exp claim";
    case JWT_BAD_CLAIMS:
        return "token claims invalid";
    }
    return "token rejected";
}

static int
s_is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

/*  Decodes base64, standard or URL-safe alphabet, with or without padding
 *  (at most two '=' making a whole number of quads). */
static int
s_b64_any_decode(const char *in, size_t len, unsigned char *out, size_t outmax, size_t *outlen)
{
    static const int variants[] = {sodium_base64_VARIANT_ORIGINAL_NO_PADDING,
                                   sodium_base64_VARIANT_URLSAFE_NO_PADDING};
    size_t pad = 0;
    while (pad < 2 && pad < len && in[len - pad - 1] == '=')
        pad++;
    if (pad > 0 && len % 4 != 0)
        return -1;
    len -= pad;
    for (size_t v = 0; v < sizeof variants / sizeof variants[0]; v++) {
        const char *end = NULL;
        if (sodium_base642bin(out, outmax, in, len, NULL, outlen, &end, variants[v]) == 0 &&
            end == in + len)
            return 0;
    }
    return -1;
}

/*  Reads an Ed25519 public key: base64 of the raw 32 bytes or of the DER
 *  SubjectPublicKeyInfo, bare or in a PEM "PUBLIC KEY" block. */
static int
s_parse_public_key(const char *text, unsigned char pk[32])
{
    static const char begin[] = "-----BEGIN PUBLIC KEY-----";
    static const char end[] = "-----END PUBLIC KEY-----";
    const char *p = text, *q = text + strlen(text);
    const char *b = strstr(text, begin);
    if (b) {
        const char *e = strstr(b, end);
        if (!e)
            return -1;
        for (const char *s = text; s < b; s++) /* nothing but blanks around */
            if (!s_is_space(*s))
                return -1;
        for (const char *s = e + sizeof end - 1; s < q; s++)
            if (!s_is_space(*s))
                return -1;
        p = b + sizeof begin - 1;
        q = e;
    }
    char b64[256];
    size_t n = 0;
    for (; p < q; p++) {
        if (s_is_space(*p))
            continue;
        if (n == sizeof b64)
            return -1;
        b64[n++] = *p;
    }
    unsigned char der[64];
    size_t len;
    if (s_b64_any_decode(b64, n, der, sizeof der, &len) != 0)
        return -1;
    if (len == 32)
        memcpy(pk, der, 32);
    else if (len == sizeof s_spki_prefix + 32 &&
             memcmp(der, s_spki_prefix, sizeof s_spki_prefix) == 0)
        memcpy(pk, der + sizeof s_spki_prefix, 32);
    else
        return -1;
    /* A real public key is a point of the main subgroup; this catches most
     * typing and copying mistakes at start rather than at every login. */
    unsigned char x25519[crypto_scalarmult_curve25519_BYTES];
    return crypto_sign_ed25519_pk_to_curve25519(x25519, pk) == 0 ? 0 : -1;
}

int
jwt_keys_init(jwt_keys_t *keys, const char *secret, const char *public_key, char *err,
              size_t errlen)
{
    memset(keys, 0, sizeof *keys);
    int has_secret = secret && *secret, has_pk = public_key && *public_key;
    if (!has_secret && !has_pk) {
        snprintf(err, errlen,
                 "no JWT key configured: set TASKCAST_JWT_SECRET or TASKCAST_JWT_PUBLIC_KEY");
        return -1;
    }
    if (has_secret) {
        size_t len = strlen(secret);
        if (len < JWT_SECRET_MIN) {
            snprintf(err, errlen,
                     "the JWT secret (TASKCAST_JWT_SECRET) is too short: it must be at least %d "
                     "bytes for HS256 (RFC 7518)",
                     JWT_SECRET_MIN);
            return -1;
        }
        keys->secret = malloc(len);
        if (!keys->secret) {
            snprintf(err, errlen, "out of memory storing the JWT secret");
            return -1;
        }
        memcpy(keys->secret, secret, len);
        keys->secret_len = len;
    }
    if (has_pk) {
        if (s_parse_public_key(public_key, keys->ed25519_pk) != 0) {
            jwt_keys_clear(keys);
            snprintf(err, errlen,
                     "the JWT public key (TASKCAST_JWT_PUBLIC_KEY) is not an Ed25519 public key: "
                     "give the base64 of its 32 bytes or of its DER SubjectPublicKeyInfo, or a "
                     "PEM PUBLIC KEY block");
            return -1;
        }
        keys->has_ed25519 = 1;
    }
    return 0;
}

void
jwt_keys_clear(jwt_keys_t *keys)
{
    if (!keys)
        return;
    if (keys->secret) {
        sodium_memzero(keys->secret, keys->secret_len);
        free(keys->secret);
    }
    sodium_memzero(keys, sizeof *keys);
}

/*  Appends base64url of bin to out at *pos. 0, or -1 if it does not fit. */
static int
s_b64url_append(char *out, size_t outlen, size_t *pos, const void *bin, size_t len)
{
    size_t need = sodium_base64_ENCODED_LEN(len, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    if (outlen - *pos < need)
        return -1;
    sodium_bin2base64(out + *pos, need, bin, len, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    *pos += strlen(out + *pos);
    return 0;
}

int
jwt_sign_hs256(const unsigned char *secret, size_t secret_len, const char *sub, int64_t iat,
               int64_t exp, int admin, char *out, size_t outlen)
{
    static const char header[] = "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";
    if (!secret || secret_len < JWT_SECRET_MIN || !sub || !out)
        return -1;
    size_t sublen = strlen(sub);
    if (sublen == 0 || sublen > JWT_SUB_MAX)
        return -1;
    /* {"sub":"<escaped>","iat":N,"exp":N,"role":"admin"}: an escape takes
     * at most 6 bytes, an integer at most 20. */
    char payload[16 + JWT_SUB_MAX * 6 + 2 * 28 + 16];
    size_t n = 0;
    n += (size_t)snprintf(payload, sizeof payload, "{\"sub\":\"");
    for (const unsigned char *s = (const unsigned char *)sub; *s; s++) {
        if (*s == '"' || *s == '\\') {
            payload[n++] = '\\';
            payload[n++] = (char)*s;
        }
        else if (*s < 0x20)
            n += (size_t)snprintf(payload + n, sizeof payload - n, "\\u%04x", *s);
        else
            payload[n++] = (char)*s;
    }
    n += (size_t)snprintf(payload + n, sizeof payload - n,
                          "\",\"iat\":%" PRId64 ",\"exp\":%" PRId64 "%s}", iat, exp,
                          admin ? ",\"role\":\"admin\"" : "");
    /* What is signed must read back: this refuses a sub that is not UTF-8. */
    json_tok_t toks[12];
    if (json_parse(payload, n, toks, sizeof toks / sizeof toks[0], 1) < 1)
        return -1;
    size_t pos = 0;
    if (s_b64url_append(out, outlen, &pos, header, sizeof header - 1) != 0 || pos + 1 >= outlen)
        return -1;
    out[pos++] = '.';
    if (s_b64url_append(out, outlen, &pos, payload, n) != 0 || pos + 1 >= outlen)
        return -1;
    unsigned char mac[S_HS256_LEN];
    s_hmac(secret, secret_len, out, pos, mac);
    out[pos++] = '.';
    int rc = s_b64url_append(out, outlen, &pos, mac, sizeof mac);
    sodium_memzero(mac, sizeof mac);
    return rc == 0 && pos <= INT_MAX ? (int)pos : -1;
}
