/*  test_jwt.c: token verification, key configuration and HS256 minting.
 *
 *  Tokens are built here from raw JSON and signed with libsodium directly,
 *  so every malformation can be produced and the verifier is not checked
 *  against itself.
 */
#include <sodium.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "check.h"
#include "jwt.h"

#define NOW    INT64_C(1700000000)
#define SECRET "0123456789abcdef0123456789abcdef" /* 32 bytes */

static unsigned char s_pk[crypto_sign_PUBLICKEYBYTES], s_sk[crypto_sign_SECRETKEYBYTES];

static void
s_b64url(const void *bin, size_t len, char *out, size_t outlen)
{
    sodium_bin2base64(out, outlen, bin, len, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
}

static void
s_b64(const void *bin, size_t len, char *out, size_t outlen, int variant)
{
    sodium_bin2base64(out, outlen, bin, len, variant);
}

enum { SIG_NONE, SIG_HS256, SIG_ED25519 };

/*  "hpart.ppart.sig" with the parts taken as they are (already encoded).
 *  A token that does not fit out is a failed check and an empty token, never
 *  a silently truncated one. */
static void
s_sign_raw(char *out, size_t outlen, const char *hpart, const char *ppart, int how,
           const unsigned char *key, size_t keylen)
{
    size_t hl = strlen(hpart), pl = strlen(ppart);
    size_t siglen64 = sodium_base64_ENCODED_LEN(crypto_sign_BYTES,
                                                sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    size_t need = hl + 1 + pl + 1 + siglen64; /* siglen64 counts the NUL */
    CHECK(need <= outlen);
    if (need > outlen) {
        if (outlen > 0)
            out[0] = '\0';
        return;
    }
    memcpy(out, hpart, hl);
    out[hl] = '.';
    memcpy(out + hl + 1, ppart, pl);
    size_t n = hl + 1 + pl;
    out[n] = '\0';
    unsigned char sig[crypto_sign_BYTES];
    size_t siglen = 0;
    if (how == SIG_HS256) {
        crypto_auth_hmacsha256_state st;
        crypto_auth_hmacsha256_init(&st, key, keylen);
        crypto_auth_hmacsha256_update(&st, (const unsigned char *)out, n);
        crypto_auth_hmacsha256_final(&st, sig);
        siglen = crypto_auth_hmacsha256_BYTES;
    }
    else if (how == SIG_ED25519) {
        crypto_sign_detached(sig, NULL, (const unsigned char *)out, n, key);
        siglen = crypto_sign_BYTES;
    }
    out[n++] = '.';
    s_b64url(sig, siglen, out + n, outlen - n);
}

/*  A token from header and payload JSON. */
static void
s_sign(char *out, size_t outlen, const char *header, const char *payload, int how,
       const unsigned char *key, size_t keylen)
{
    char h[2048], p[4096];
    s_b64url(header, strlen(header), h, sizeof h);
    s_b64url(payload, strlen(payload), p, sizeof p);
    s_sign_raw(out, outlen, h, p, how, key, keylen);
}

static const char *const HS = "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";
static const char *const ED = "{\"alg\":\"EdDSA\",\"typ\":\"JWT\"}";

static jwt_status_t
s_verify(const jwt_keys_t *keys, const char *token, jwt_claims_t *c)
{
    return jwt_verify(keys, token, strlen(token), NOW, c);
}

/*  Verifies an HS256 token with payload p (printf-style) against keys. */
static jwt_status_t
s_hs(const jwt_keys_t *keys, const char *payload, jwt_claims_t *c)
{
    char tok[5000];
    s_sign(tok, sizeof tok, HS, payload, SIG_HS256, (const unsigned char *)SECRET, strlen(SECRET));
    return s_verify(keys, tok, c);
}

static void
test_valid(const jwt_keys_t *hs, const jwt_keys_t *ed, const jwt_keys_t *both)
{
    char tok[5000], payload[512];
    jwt_claims_t c;
    snprintf(payload, sizeof payload, "{\"sub\":\"42\",\"iat\":%lld,\"exp\":%lld}", (long long)NOW,
             (long long)NOW + 60);
    s_sign(tok, sizeof tok, HS, payload, SIG_HS256, (const unsigned char *)SECRET, strlen(SECRET));
    CHECK(s_verify(hs, tok, &c) == JWT_OK);
    CHECK_STR(c.sub, "42");
    CHECK(c.sub_len == 2 && c.admin == 0 && c.exp == NOW + 60);
    CHECK(c.has_iat && c.iat == NOW && !c.has_nbf);
    CHECK(s_verify(both, tok, &c) == JWT_OK);
    CHECK(s_verify(ed, tok, &c) == JWT_BAD_ALG); /* HS256 with no secret configured */
    CHECK(s_verify(hs, tok, NULL) == JWT_OK);    /* claims are optional */

    /* Not NUL-terminated: only len bytes are read. */
    size_t len = strlen(tok);
    tok[len] = 'x';
    tok[len + 1] = '\0';
    CHECK(jwt_verify(hs, tok, len, NOW, &c) == JWT_OK);
    CHECK(jwt_verify(hs, tok, len + 1, NOW, &c) != JWT_OK);

    s_sign(tok, sizeof tok, ED, payload, SIG_ED25519, s_sk, sizeof s_sk);
    CHECK(s_verify(ed, tok, &c) == JWT_OK);
    CHECK_STR(c.sub, "42");
    CHECK(s_verify(both, tok, &c) == JWT_OK);
    CHECK(s_verify(hs, tok, &c) == JWT_BAD_ALG); /* EdDSA with no public key configured */

    /* typ and kid are ignored; alg is compared after unescaping. */
    s_sign(tok, sizeof tok, "{\"typ\":\"at+jwt\",\"kid\":\"k1\",\"alg\":\"EdDSA\"}", payload,
           SIG_ED25519, s_sk, sizeof s_sk);
    CHECK(s_verify(ed, tok, &c) == JWT_OK);
    s_sign(tok, sizeof tok, "{\"alg\":\"HS\\u0032\\u0035\\u0036\"}", payload, SIG_HS256,
           (const unsigned char *)SECRET, strlen(SECRET));
    CHECK(s_verify(hs, tok, &c) == JWT_OK);
    /* Whitespace in the JSON is fine. */
    s_sign(tok, sizeof tok, " { \"alg\" : \"HS256\" } ", " {\"sub\":\"a\", \"exp\": 1800000000 }\n",
           SIG_HS256, (const unsigned char *)SECRET, strlen(SECRET));
    CHECK(s_verify(hs, tok, &c) == JWT_OK);
}

static void
test_times(const jwt_keys_t *hs)
{
    char p[256];
    jwt_claims_t c;
    const long long now = NOW;
    /* Each payload is {"sub":"u",<pre><arg><post>}. */
    struct {
        const char *pre;
        long long arg;
        const char *post;
        jwt_status_t want;
    } cases[] = {
        {"\"exp\":", now - 1, "", JWT_EXPIRED},
        {"\"exp\":", now, "", JWT_EXPIRED}, /* no leeway */
        {"\"exp\":", now + 1, "", JWT_OK},
        {"\"exp\":", now, ".5", JWT_EXPIRED}, /* fraction truncated */
        {"\"exp\":", -now, "", JWT_EXPIRED},
        {"\"exp\":1.8e9,\"nbf\":", now + 1, "", JWT_NOT_YET_VALID},
        {"\"exp\":1.8e9,\"nbf\":", now, "", JWT_OK},
        {"\"exp\":1.8e9,\"nbf\":", now - 100, "", JWT_OK},
        {"\"exp\":1.8e9,\"iat\":", now + JWT_IAT_SKEW_S + 1, "", JWT_NOT_YET_VALID},
        {"\"exp\":1.8e9,\"iat\":", now + 86400, "", JWT_NOT_YET_VALID},
        {"\"exp\":1.8e9,\"iat\":", now + JWT_IAT_SKEW_S, "", JWT_OK},
        {"\"exp\":1.8e9,\"iat\":", now + 5, "", JWT_OK},
        {"\"exp\":1.8e9,\"iat\":", now - 86400, "", JWT_OK},
        {"\"exp\":1.8e9,\"iat\":", INT64_MAX, "", JWT_NOT_YET_VALID},
        {"\"exp\":", INT64_MAX, ",\"nbf\":1", JWT_OK},
        /* expired wins over not yet valid */
        {"\"exp\":", now - 1, ",\"nbf\":1800000000", JWT_EXPIRED},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        snprintf(p, sizeof p, "{\"sub\":\"u\",%s%lld%s}", cases[i].pre, cases[i].arg,
                 cases[i].post);
        jwt_status_t st = s_hs(hs, p, &c);
        if (st != cases[i].want)
            fprintf(stderr, "%s: got %s\n", p, jwt_status_message(st));
        CHECK(st == cases[i].want);
    }
    snprintf(p, sizeof p, "{\"sub\":\"u\",\"exp\":%lld,\"nbf\":%lld,\"iat\":%lld}", now + 10,
             now - 10, now - 20);
    CHECK(s_hs(hs, p, &c) == JWT_OK);
    CHECK(c.exp == NOW + 10 && c.has_nbf && c.nbf == NOW - 10 && c.has_iat && c.iat == NOW - 20);
    CHECK(jwt_verify(hs, "", 0, NOW, &c) == JWT_MISSING);
}

static void
test_claims(const jwt_keys_t *hs)
{
    char sub255[256], p[1024];
    jwt_claims_t c;
    struct {
        const char *payload;
        jwt_status_t want;
    } cases[] = {
        {"{\"sub\":\"u\"}", JWT_MISSING_EXP},
        {"{}", JWT_MISSING_EXP},
        {"{\"sub\":\"u\",\"exp\":\"1800000000\"}", JWT_BAD_CLAIMS},
        {"{\"sub\":\"u\",\"exp\":null}", JWT_BAD_CLAIMS},
        {"{\"sub\":\"u\",\"exp\":true}", JWT_BAD_CLAIMS},
        {"{\"sub\":\"u\",\"exp\":1e30}", JWT_BAD_CLAIMS},
        {"{\"sub\":\"u\",\"exp\":1800000000,\"nbf\":\"1\"}", JWT_BAD_CLAIMS},
        {"{\"sub\":\"u\",\"exp\":1800000000,\"iat\":[1]}", JWT_BAD_CLAIMS},
        {"{\"exp\":1800000000}", JWT_BAD_CLAIMS},
        {"{\"sub\":\"\",\"exp\":1800000000}", JWT_BAD_CLAIMS},
        {"{\"sub\":null,\"exp\":1800000000}", JWT_BAD_CLAIMS},
        {"{\"sub\":true,\"exp\":1800000000}", JWT_BAD_CLAIMS},
        {"{\"sub\":[\"u\"],\"exp\":1800000000}", JWT_BAD_CLAIMS},
        {"{\"sub\":4.2,\"exp\":1800000000}", JWT_BAD_CLAIMS},
        {"{\"sub\":1e3,\"exp\":1800000000}", JWT_BAD_CLAIMS},
        {"{\"sub\":99999999999999999999,\"exp\":1800000000}", JWT_BAD_CLAIMS},
        {"{\"sub\":\"a\\u0000b\",\"exp\":1800000000}", JWT_BAD_CLAIMS},
        /* a payload that is not a JSON object */
        {"[1]", JWT_MALFORMED},
        {"\"sub\"", JWT_MALFORMED},
        {"not json", JWT_MALFORMED},
        {"{\"sub\":\"u\",\"exp\":1800000000,}", JWT_MALFORMED},
        {"{\"sub\":\"u\",\"exp\":1800000000} x", JWT_MALFORMED},
        /* duplicate names are refused, also when spelt differently */
        {"{\"sub\":\"u\",\"sub\":\"v\",\"exp\":1800000000}", JWT_MALFORMED},
        {"{\"sub\":\"u\",\"s\\u0075b\":\"v\",\"exp\":1800000000}", JWT_MALFORMED},
        {"{\"sub\":\"u\",\"exp\":1,\"exp\":1800000000}", JWT_MALFORMED},
        /* nesting past 16 levels */
        {"{\"sub\":\"u\",\"exp\":1800000000,\"x\":[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]}",
         JWT_MALFORMED},
        {"{\"sub\":\"u\",\"exp\":1800000000,\"x\":[[[[[[[[[[[[[[1]]]]]]]]]]]]]]}", JWT_OK},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        jwt_status_t st = s_hs(hs, cases[i].payload, &c);
        if (st != cases[i].want)
            fprintf(stderr, "%s: got %s\n", cases[i].payload, jwt_status_message(st));
        CHECK(st == cases[i].want);
        if (st != JWT_OK)
            CHECK(c.sub[0] == '\0' && c.exp == 0); /* nothing left behind */
    }

    CHECK(s_hs(hs, "{\"sub\":42,\"exp\":1800000000}", &c) == JWT_OK);
    CHECK_STR(c.sub, "42");
    CHECK(c.sub_len == 2);
    CHECK(s_hs(hs, "{\"sub\":-7,\"exp\":1800000000}", &c) == JWT_OK);
    CHECK_STR(c.sub, "-7");
    CHECK(s_hs(hs, "{\"sub\":9223372036854775807,\"exp\":1800000000}", &c) == JWT_OK);
    CHECK_STR(c.sub, "9223372036854775807");
    CHECK(s_hs(hs, "{\"sub\":\"a\\u00e9\\\"\",\"exp\":1800000000}", &c) == JWT_OK);
    CHECK_STR(c.sub, "a\xc3\xa9\"");
    CHECK(c.sub_len == 4);

    memset(sub255, 'a', 255);
    sub255[255] = '\0';
    snprintf(p, sizeof p, "{\"sub\":\"%s\",\"exp\":1800000000}", sub255);
    CHECK(s_hs(hs, p, &c) == JWT_OK);
    CHECK(c.sub_len == 255 && strcmp(c.sub, sub255) == 0);
    snprintf(p, sizeof p, "{\"sub\":\"%sb\",\"exp\":1800000000}", sub255);
    CHECK(s_hs(hs, p, &c) == JWT_BAD_CLAIMS);

    /* role */
    CHECK(s_hs(hs, "{\"sub\":\"u\",\"exp\":1800000000,\"role\":\"admin\"}", &c) == JWT_OK);
    CHECK(c.admin == 1);
    CHECK(s_hs(hs, "{\"sub\":\"u\",\"exp\":1800000000,\"role\":\"user\"}", &c) == JWT_OK);
    CHECK(c.admin == 0);
    CHECK(s_hs(hs, "{\"sub\":\"u\",\"exp\":1800000000,\"role\":\"Admin\"}", &c) == JWT_OK);
    CHECK(c.admin == 0);
    CHECK(s_hs(hs, "{\"sub\":\"u\",\"exp\":1800000000,\"role\":[\"admin\"]}", &c) == JWT_OK);
    CHECK(c.admin == 0);
    CHECK(s_hs(hs, "{\"sub\":\"u\",\"exp\":1800000000,\"role\":\"admin \"}", &c) == JWT_OK);
    CHECK(c.admin == 0);
    CHECK(s_hs(hs, "{\"sub\":\"u\",\"exp\":1800000000,\"x\":{\"role\":\"admin\"}}", &c) == JWT_OK);
    CHECK(c.admin == 0);

    /* Many claims: more JSON tokens than the verifier keeps is malformed. */
    char big[3000];
    size_t n = (size_t)snprintf(big, sizeof big, "{\"sub\":\"u\",\"exp\":1800000000");
    for (int i = 0; i < 140; i++)
        n += (size_t)snprintf(big + n, sizeof big - n, ",\"c%d\":1", i);
    snprintf(big + n, sizeof big - n, "}");
    CHECK(s_hs(hs, big, &c) == JWT_MALFORMED);
}

static void
test_header(const jwt_keys_t *hs, const jwt_keys_t *ed, const jwt_keys_t *both)
{
    const char *p = "{\"sub\":\"u\",\"exp\":1800000000}";
    const unsigned char *sec = (const unsigned char *)SECRET;
    char tok[5000], h[256], pp[256];
    jwt_claims_t c;

    /* alg none: without a signature part the shape is already wrong; with
     * one, the algorithm is refused. */
    s_sign(tok, sizeof tok, "{\"alg\":\"none\"}", p, SIG_NONE, NULL, 0);
    CHECK(tok[strlen(tok) - 1] == '.');
    CHECK(s_verify(both, tok, &c) == JWT_MALFORMED);
    s_sign(tok, sizeof tok, "{\"alg\":\"none\"}", p, SIG_HS256, sec, strlen(SECRET));
    CHECK(s_verify(both, tok, &c) == JWT_BAD_ALG);
    s_sign(tok, sizeof tok, "{\"alg\":\"none\",\"typ\":\"JWT\"}", p, SIG_ED25519, s_sk,
           sizeof s_sk);
    CHECK(s_verify(both, tok, &c) == JWT_BAD_ALG);

    static const char *const algs[] = {
        "{\"alg\":\"None\"}",    "{\"alg\":\"HS512\"}", "{\"alg\":\"HS384\"}",
        "{\"alg\":\"RS256\"}",   "{\"alg\":\"ES256\"}", "{\"alg\":\"PS256\"}",
        "{\"alg\":\"Ed25519\"}", "{\"alg\":\"hs256\"}", "{\"alg\":\"HS256 \"}",
        "{\"alg\":\"\"}",        "{\"alg\":\"eddsa\"}",
    };
    for (size_t i = 0; i < sizeof algs / sizeof algs[0]; i++) {
        s_sign(tok, sizeof tok, algs[i], p, SIG_HS256, sec, strlen(SECRET));
        CHECK(s_verify(both, tok, &c) == JWT_BAD_ALG);
    }

    /* The classic confusion: HS256 keyed with the Ed25519 public key. */
    s_sign(tok, sizeof tok, HS, p, SIG_HS256, s_pk, sizeof s_pk);
    CHECK(s_verify(ed, tok, &c) == JWT_BAD_ALG);
    CHECK(s_verify(both, tok, &c) == JWT_BAD_SIGNATURE);
    /* EdDSA signed by the right key but sent where only HS256 is set up. */
    s_sign(tok, sizeof tok, ED, p, SIG_ED25519, s_sk, sizeof s_sk);
    CHECK(s_verify(hs, tok, &c) == JWT_BAD_ALG);
    /* The header says HS256, the signature is Ed25519 (and the reverse). */
    s_sign(tok, sizeof tok, HS, p, SIG_ED25519, s_sk, sizeof s_sk);
    CHECK(s_verify(both, tok, &c) == JWT_BAD_SIGNATURE);
    s_sign(tok, sizeof tok, ED, p, SIG_HS256, sec, strlen(SECRET));
    CHECK(s_verify(both, tok, &c) == JWT_BAD_SIGNATURE);

    /* Headers that are not usable objects. */
    static const char *const bad[] = {
        "not json",
        "[\"HS256\"]",
        "\"HS256\"",
        "{}",
        "{\"typ\":\"JWT\"}",
        "{\"alg\":null}",
        "{\"alg\":256}",
        "{\"alg\":[\"HS256\"]}",
        "{\"alg\":\"HS256\",}",
        "{\"alg\":\"HS256\",\"crit\":[\"exp\"],\"exp\":1}",
        "{\"alg\":\"HS256\",\"crit\":[]}",
        "{\"alg\":\"none\",\"alg\":\"HS256\"}",
        "{\"alg\":\"HS256\",\"alg\":\"HS256\"}",
        "{\"alg\":\"HS256\",\"\\u0061lg\":\"none\"}",
        "{\"alg\":\"HS256\",\"k\\u0000\":1}",
        "{\"alg\":\"HS256\"}\x01",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        s_sign(tok, sizeof tok, bad[i], p, SIG_HS256, sec, strlen(SECRET));
        jwt_status_t st = s_verify(both, tok, &c);
        if (st != JWT_MALFORMED)
            fprintf(stderr, "header %s: got %s\n", bad[i], jwt_status_message(st));
        CHECK(st == JWT_MALFORMED);
    }
    /* The header is checked before the signature is looked at. */
    const char *crit = "{\"alg\":\"HS256\",\"crit\":[\"b64\"],\"b64\":false}";
    s_b64url(crit, strlen(crit), h, sizeof h);
    s_b64url(p, strlen(p), pp, sizeof pp);
    snprintf(tok, sizeof tok, "%s.%s.AAAA", h, pp);
    CHECK(s_verify(both, tok, &c) == JWT_MALFORMED);
}

static void
test_signature(const jwt_keys_t *hs, const jwt_keys_t *ed)
{
    const char *p = "{\"sub\":\"u\",\"exp\":1800000000}";
    const unsigned char *sec = (const unsigned char *)SECRET;
    char tok[5000];
    jwt_claims_t c;

    s_sign(tok, sizeof tok, HS, p, SIG_HS256, sec, strlen(SECRET));
    CHECK(s_verify(hs, tok, &c) == JWT_OK);
    char *sig = strrchr(tok, '.') + 1;
    sig[0] = sig[0] == 'A' ? 'B' : 'A'; /* a different first byte */
    CHECK(s_verify(hs, tok, &c) == JWT_BAD_SIGNATURE);

    s_sign(tok, sizeof tok, HS, p, SIG_HS256,
           (const unsigned char *)"0123456789abcdef0123456789abcdeF", 32);
    CHECK(s_verify(hs, tok, &c) == JWT_BAD_SIGNATURE);
    s_sign(tok, sizeof tok, HS, p, SIG_HS256, sec, 31);
    CHECK(s_verify(hs, tok, &c) == JWT_BAD_SIGNATURE);

    /* A changed payload no longer matches: "u" becomes "v". */
    s_sign(tok, sizeof tok, HS, p, SIG_HS256, sec, strlen(SECRET));
    char *pay = strchr(tok, '.') + 1;
    CHECK(strncmp(pay, "eyJzdWIiOiJ1Ii", 14) == 0);
    pay[11] = '2'; /* "OiJ1" -> "OiJ2": 'u' -> 'v' */
    CHECK(s_verify(hs, tok, &c) == JWT_BAD_SIGNATURE);

    /* A signature of the wrong length, well encoded. */
    s_sign(tok, sizeof tok, HS, p, SIG_HS256, sec, strlen(SECRET));
    sig = strrchr(tok, '.') + 1;
    strcpy(sig, "AAAA");
    CHECK(s_verify(hs, tok, &c) == JWT_BAD_SIGNATURE);

    s_sign(tok, sizeof tok, ED, p, SIG_ED25519, s_sk, sizeof s_sk);
    CHECK(s_verify(ed, tok, &c) == JWT_OK);
    sig = strrchr(tok, '.') + 1;
    sig[5] = sig[5] == 'A' ? 'B' : 'A';
    CHECK(s_verify(ed, tok, &c) == JWT_BAD_SIGNATURE);
    unsigned char pk2[crypto_sign_PUBLICKEYBYTES], sk2[crypto_sign_SECRETKEYBYTES];
    crypto_sign_keypair(pk2, sk2);
    s_sign(tok, sizeof tok, ED, p, SIG_ED25519, sk2, sizeof sk2);
    CHECK(s_verify(ed, tok, &c) == JWT_BAD_SIGNATURE);
    s_sign(tok, sizeof tok, ED, p, SIG_ED25519, s_sk, sizeof s_sk);
    sig = strrchr(tok, '.') + 1;
    sig[44] = '\0'; /* 33 of the 64 bytes, cleanly encoded */
    CHECK(s_verify(ed, tok, &c) == JWT_BAD_SIGNATURE);
}

static void
test_shape(const jwt_keys_t *hs)
{
    const char *p = "{\"sub\":\"u\",\"exp\":1800000000}"; /* 28 bytes: a 2-char tail */
    const unsigned char *sec = (const unsigned char *)SECRET;
    char h[128], pp[128], tok[5000], bad[5000];
    jwt_claims_t c;
    s_b64url(HS, strlen(HS), h, sizeof h);
    s_b64url(p, strlen(p), pp, sizeof pp);
    s_sign(tok, sizeof tok, HS, p, SIG_HS256, sec, strlen(SECRET));
    CHECK(s_verify(hs, tok, &c) == JWT_OK);

    CHECK(jwt_verify(hs, NULL, 10, NOW, &c) == JWT_MISSING);
    CHECK(jwt_verify(hs, tok, 0, NOW, &c) == JWT_MISSING);
    CHECK(s_verify(hs, "", &c) == JWT_MISSING);

    const char *sig = strrchr(tok, '.') + 1;
    snprintf(bad, sizeof bad, "%s.%s", h, pp); /* two parts */
    CHECK(s_verify(hs, bad, &c) == JWT_MALFORMED);
    snprintf(bad, sizeof bad, "%s.%s.%s.%s", h, pp, sig, sig); /* four parts */
    CHECK(s_verify(hs, bad, &c) == JWT_MALFORMED);
    snprintf(bad, sizeof bad, "%s.%s.%s.", h, pp, sig); /* a trailing dot */
    CHECK(s_verify(hs, bad, &c) == JWT_MALFORMED);
    snprintf(bad, sizeof bad, ".%s.%s.%s", h, pp, sig); /* a leading dot */
    CHECK(s_verify(hs, bad, &c) == JWT_MALFORMED);
    snprintf(bad, sizeof bad, "%s..%s.%s", h, pp, sig); /* a doubled dot */
    CHECK(s_verify(hs, bad, &c) == JWT_MALFORMED);
    static const char *const empties[] = {".", "..", "...", "a..", ".a.", "..a", "a.b", "abc"};
    for (size_t i = 0; i < sizeof empties / sizeof empties[0]; i++)
        CHECK(s_verify(hs, empties[i], &c) == JWT_MALFORMED);
    snprintf(bad, sizeof bad, ".%s.%s", pp, sig);
    CHECK(s_verify(hs, bad, &c) == JWT_MALFORMED);
    snprintf(bad, sizeof bad, "%s..%s", h, sig);
    CHECK(s_verify(hs, bad, &c) == JWT_MALFORMED);

    /* Base64url is strict: each of these is signed as it stands, so only
     * the encoding can be what is refused. */
    char hpad[130], ppad[130], alt[130];
    snprintf(hpad, sizeof hpad, "%s=", h); /* "eyJ...fQ" + "=" */
    s_sign_raw(bad, sizeof bad, hpad, pp, SIG_HS256, sec, strlen(SECRET));
    CHECK(s_verify(hs, bad, &c) == JWT_MALFORMED);
    CHECK(strlen(pp) % 4 != 0);
    snprintf(ppad, sizeof ppad, "%s%s", pp, strlen(pp) % 4 == 2 ? "==" : "=");
    s_sign_raw(bad, sizeof bad, h, ppad, SIG_HS256, sec, strlen(SECRET));
    CHECK(s_verify(hs, bad, &c) == JWT_MALFORMED);
    snprintf(bad, sizeof bad, "%s.%s.%s=", h, pp, sig);
    CHECK(s_verify(hs, bad, &c) == JWT_MALFORMED);

    /* '+' and '/' are the standard alphabet, not base64url. Aligned on a
     * 3-byte boundary, ">>>" encodes to "Pj4-" and "???" to "Pz8_": build a
     * payload with both and swap in the standard characters. */
    const char *sym = "{\"sub\":\"u>>>???\",\"exp\":1800000000}";
    s_b64url(sym, strlen(sym), alt, sizeof alt);
    CHECK(strchr(alt, '-') != NULL && strchr(alt, '_') != NULL);
    s_sign_raw(bad, sizeof bad, h, alt, SIG_HS256, sec, strlen(SECRET));
    CHECK(s_verify(hs, bad, &c) == JWT_OK);
    CHECK_STR(c.sub, "u>>>???");
    for (char *q = alt; *q; q++)
        if (*q == '-')
            *q = '+';
    s_sign_raw(bad, sizeof bad, h, alt, SIG_HS256, sec, strlen(SECRET));
    CHECK(s_verify(hs, bad, &c) == JWT_MALFORMED);
    s_b64url(sym, strlen(sym), alt, sizeof alt);
    for (char *q = alt; *q; q++)
        if (*q == '_')
            *q = '/';
    s_sign_raw(bad, sizeof bad, h, alt, SIG_HS256, sec, strlen(SECRET));
    CHECK(s_verify(hs, bad, &c) == JWT_MALFORMED);

    /* Stray bytes, and lengths or trailing bits no encoder produces. */
    static const char *const strays[] = {" ", "!", "*", "\n", "%3D", "\x80"};
    for (size_t i = 0; i < sizeof strays / sizeof strays[0]; i++) {
        snprintf(alt, sizeof alt, "%.10s%s%s", pp, strays[i], pp + 10);
        s_sign_raw(bad, sizeof bad, h, alt, SIG_HS256, sec, strlen(SECRET));
        CHECK(s_verify(hs, bad, &c) == JWT_MALFORMED);
    }
    snprintf(alt, sizeof alt, "%sA", pp); /* one char too many */
    while (strlen(alt) % 4 != 1)
        strcat(alt, "A");
    s_sign_raw(bad, sizeof bad, h, alt, SIG_HS256, sec, strlen(SECRET));
    CHECK(s_verify(hs, bad, &c) == JWT_MALFORMED);
    /* The final '}' encodes as the tail "fQ"; "fR" decodes to the same
     * byte but with non-zero unused bits, which no encoder produces. */
    CHECK(strlen(pp) % 4 == 2 && strcmp(pp + strlen(pp) - 2, "fQ") == 0);
    snprintf(alt, sizeof alt, "%s", pp);
    alt[strlen(alt) - 1] = 'R';
    s_sign_raw(bad, sizeof bad, h, alt, SIG_HS256, sec, strlen(SECRET));
    CHECK(s_verify(hs, bad, &c) == JWT_MALFORMED);

    /* Length limit: JWT_TOKEN_MAX is accepted in shape, one more is not. */
    memset(bad, 'A', JWT_TOKEN_MAX + 1);
    bad[10] = '.';
    bad[20] = '.';
    CHECK(jwt_verify(hs, bad, JWT_TOKEN_MAX + 1, NOW, &c) == JWT_MALFORMED);
    /* A valid token of exactly JWT_TOKEN_MAX bytes passes; one of
     * JWT_TOKEN_MAX + 1 is refused for its length alone. Trailing blanks in
     * the header JSON and the payload size tune the length byte by byte. */
    char filler[3100], payload[3200], header[64];
    char at_max[JWT_TOKEN_MAX + 8] = "", past_max[JWT_TOKEN_MAX + 8] = "";
    memset(filler, 'x', sizeof filler);
    for (int fill = 2900; fill < 3100 && !(at_max[0] && past_max[0]); fill++) {
        snprintf(payload, sizeof payload, "{\"sub\":\"u\",\"exp\":1800000000,\"f\":\"%.*s\"}", fill,
                 filler);
        for (int sp = 0; sp < 3; sp++) {
            snprintf(header, sizeof header, "%s%.*s", HS, sp, "   ");
            s_sign(tok, sizeof tok, header, payload, SIG_HS256, sec, strlen(SECRET));
            size_t n = strlen(tok);
            if (n == JWT_TOKEN_MAX || n == JWT_TOKEN_MAX + 1)
                memcpy(n == JWT_TOKEN_MAX ? at_max : past_max, tok, n + 1);
        }
    }
    CHECK(strlen(at_max) == JWT_TOKEN_MAX && strlen(past_max) == JWT_TOKEN_MAX + 1);
    CHECK(s_verify(hs, at_max, &c) == JWT_OK);
    CHECK(s_verify(hs, past_max, &c) == JWT_MALFORMED);
}

/*  Inits keys from a public key text; 1 if it gives s_pk and verifies. */
static int
s_pk_ok(const char *text)
{
    jwt_keys_t k;
    char err[256] = "";
    char tok[1024];
    jwt_claims_t c;
    if (jwt_keys_init(&k, NULL, text, err, sizeof err) != 0) {
        fprintf(stderr, "public key refused (%s): %s\n", err, text);
        return 0;
    }
    s_sign(tok, sizeof tok, ED, "{\"sub\":\"u\",\"exp\":1800000000}", SIG_ED25519, s_sk,
           sizeof s_sk);
    int ok = k.has_ed25519 && k.secret == NULL && memcmp(k.ed25519_pk, s_pk, 32) == 0 &&
             s_verify(&k, tok, &c) == JWT_OK;
    jwt_keys_clear(&k);
    return ok;
}

static int
s_pk_refused(const char *text)
{
    jwt_keys_t k;
    char err[512] = "";
    int rc = jwt_keys_init(&k, NULL, text, err, sizeof err);
    int ok = rc == -1 && strstr(err, "Ed25519") != NULL && !k.has_ed25519;
    if (rc == 0)
        jwt_keys_clear(&k);
    if (!ok)
        fprintf(stderr, "public key not refused: %s\n", text);
    return ok;
}

static void
test_keys(void)
{
    jwt_keys_t k;
    char err[512];

    /* Neither. */
    CHECK(jwt_keys_init(&k, NULL, NULL, err, sizeof err) == -1);
    CHECK_STR(err, "no JWT key configured: set TASKCAST_JWT_SECRET or TASKCAST_JWT_PUBLIC_KEY");
    err[0] = '\0';
    CHECK(jwt_keys_init(&k, "", "", err, sizeof err) == -1);
    CHECK_STR(err, "no JWT key configured: set TASKCAST_JWT_SECRET or TASKCAST_JWT_PUBLIC_KEY");

    /* Secret: at least 32 bytes, never echoed. */
    const char *short_secret = "0123456789abcdef0123456789abcde";
    CHECK(jwt_keys_init(&k, short_secret, NULL, err, sizeof err) == -1);
    CHECK(strstr(err, "at least 32 bytes") != NULL);
    CHECK(strstr(err, short_secret) == NULL && strstr(err, "0123") == NULL);
    CHECK(k.secret == NULL);
    CHECK(jwt_keys_init(&k, SECRET, NULL, err, sizeof err) == 0);
    CHECK(k.secret && k.secret_len == 32 && memcmp(k.secret, SECRET, 32) == 0 && !k.has_ed25519);
    jwt_keys_clear(&k);
    CHECK(k.secret == NULL && k.secret_len == 0);
    jwt_keys_clear(&k); /* twice is harmless */
    const char *long_secret = "a secret much longer than thirty-two bytes, with spaces and ünï";
    CHECK(jwt_keys_init(&k, long_secret, NULL, err, sizeof err) == 0);
    CHECK(k.secret_len == strlen(long_secret));
    jwt_keys_clear(&k);

    /* Public key: every accepted encoding of the same key. */
    char text[1024], b64[256], body[256];
    s_b64(s_pk, 32, b64, sizeof b64, sodium_base64_VARIANT_ORIGINAL);
    CHECK(strlen(b64) == 44 && b64[43] == '=');
    CHECK(s_pk_ok(b64));
    b64[43] = '\0';
    CHECK(s_pk_ok(b64));
    s_b64(s_pk, 32, b64, sizeof b64, sodium_base64_VARIANT_URLSAFE);
    CHECK(s_pk_ok(b64));
    s_b64(s_pk, 32, b64, sizeof b64, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    CHECK(s_pk_ok(b64));
    snprintf(text, sizeof text, "  %s\n", b64);
    CHECK(s_pk_ok(text));

    unsigned char der[44] = {0x30, 0x2a, 0x30, 0x05, 0x06, 0x03,
                             0x2b, 0x65, 0x70, 0x03, 0x21, 0x00};
    memcpy(der + 12, s_pk, 32);
    s_b64(der, 44, b64, sizeof b64, sodium_base64_VARIANT_ORIGINAL);
    CHECK(strlen(b64) == 60 && b64[59] == '=');
    CHECK(s_pk_ok(b64));
    s_b64(der, 44, b64, sizeof b64, sodium_base64_VARIANT_ORIGINAL_NO_PADDING);
    CHECK(s_pk_ok(b64));
    s_b64(der, 44, b64, sizeof b64, sodium_base64_VARIANT_URLSAFE);
    CHECK(s_pk_ok(b64));

    s_b64(der, 44, body, sizeof body, sodium_base64_VARIANT_ORIGINAL);
    snprintf(text, sizeof text, "-----BEGIN PUBLIC KEY-----\n%s\n-----END PUBLIC KEY-----\n", body);
    CHECK(s_pk_ok(text));
    snprintf(text, sizeof text,
             "\r\n-----BEGIN PUBLIC KEY-----\r\n%.30s\r\n%s\r\n-----END PUBLIC KEY-----", body,
             body + 30);
    CHECK(s_pk_ok(text));
    snprintf(text, sizeof text, "-----BEGIN PUBLIC KEY-----%s-----END PUBLIC KEY-----", body);
    CHECK(s_pk_ok(text));

    /* A key whose standard encoding has both '+' and '/', so that the two
     * alphabets really differ; mixing them is refused. */
    unsigned char pk2[32], sk2[64];
    do {
        crypto_sign_keypair(pk2, sk2);
        s_b64(pk2, 32, b64, sizeof b64, sodium_base64_VARIANT_ORIGINAL);
    } while (!strchr(b64, '+') || !strchr(b64, '/'));
    CHECK(jwt_keys_init(&k, NULL, b64, err, sizeof err) == 0);
    CHECK(memcmp(k.ed25519_pk, pk2, 32) == 0);
    jwt_keys_clear(&k);
    for (char *q = b64; *q; q++)
        if (*q == '+')
            *q = '-';
    CHECK(jwt_keys_init(&k, NULL, b64, err, sizeof err) == -1); /* '-' with '/' */
    for (char *q = b64; *q; q++)
        if (*q == '/')
            *q = '_';
    CHECK(jwt_keys_init(&k, NULL, b64, err, sizeof err) == 0); /* all URL-safe */
    CHECK(memcmp(k.ed25519_pk, pk2, 32) == 0);
    jwt_keys_clear(&k);

    /* Garbage. */
    CHECK(s_pk_refused("not a key!"));
    CHECK(s_pk_refused("   \n"));
    unsigned char raw[64] = {0};
    memcpy(raw, s_pk, 32);
    s_b64(raw, 31, b64, sizeof b64, sodium_base64_VARIANT_ORIGINAL);
    CHECK(s_pk_refused(b64));
    s_b64(raw, 33, b64, sizeof b64, sodium_base64_VARIANT_ORIGINAL);
    CHECK(s_pk_refused(b64));
    s_b64(raw, 64, b64, sizeof b64, sodium_base64_VARIANT_ORIGINAL);
    CHECK(s_pk_refused(b64));
    s_b64(s_pk, 32, b64, sizeof b64, sodium_base64_VARIANT_ORIGINAL);
    strcat(b64, "=="); /* too much padding */
    CHECK(s_pk_refused(b64));
    s_b64(s_pk, 32, b64, sizeof b64, sodium_base64_VARIANT_ORIGINAL_NO_PADDING);
    strcat(b64, "=="); /* 43 characters need one '=', not two */
    CHECK(s_pk_refused(b64));
    s_b64(der, 44, b64, sizeof b64, sodium_base64_VARIANT_ORIGINAL_NO_PADDING);
    strcat(b64, "=="); /* 59 characters need one '=', not two */
    CHECK(s_pk_refused(b64));
    s_b64(s_pk, 32, b64, sizeof b64, sodium_base64_VARIANT_ORIGINAL_NO_PADDING);
    b64[10] = '*';
    CHECK(s_pk_refused(b64));
    memset(raw, 0, 32); /* not a usable point (small order) */
    s_b64(raw, 32, b64, sizeof b64, sodium_base64_VARIANT_ORIGINAL);
    CHECK(s_pk_refused(b64));
    raw[0] = 1; /* the identity */
    s_b64(raw, 32, b64, sizeof b64, sodium_base64_VARIANT_ORIGINAL);
    CHECK(s_pk_refused(b64));
    der[8] = 0x6e; /* X25519's OID, not Ed25519's */
    s_b64(der, 44, b64, sizeof b64, sodium_base64_VARIANT_ORIGINAL);
    CHECK(s_pk_refused(b64));
    der[8] = 0x70;
    der[11] = 0x01;
    s_b64(der, 44, b64, sizeof b64, sodium_base64_VARIANT_ORIGINAL);
    CHECK(s_pk_refused(b64));
    snprintf(text, sizeof text, "-----BEGIN PRIVATE KEY-----\n%s\n-----END PRIVATE KEY-----\n",
             body);
    CHECK(s_pk_refused(text));
    snprintf(text, sizeof text, "-----BEGIN PUBLIC KEY-----\n%s\n", body);
    CHECK(s_pk_refused(text));
    snprintf(text, sizeof text, "-----BEGIN PUBLIC KEY-----\n%s\n-----END PUBLIC KEY-----\nx",
             body);
    CHECK(s_pk_refused(text));
    snprintf(text, sizeof text, "x-----BEGIN PUBLIC KEY-----\n%s\n-----END PUBLIC KEY-----", body);
    CHECK(s_pk_refused(text));
    memset(text, 'A', 600);
    text[600] = '\0';
    CHECK(s_pk_refused(text));

    /* A bad public key next to a good secret: nothing is kept. */
    CHECK(jwt_keys_init(&k, SECRET, "garbage", err, sizeof err) == -1);
    CHECK(k.secret == NULL && !k.has_ed25519);
    CHECK(strstr(err, SECRET) == NULL);
    /* Both good: both usable. */
    s_b64(s_pk, 32, b64, sizeof b64, sodium_base64_VARIANT_ORIGINAL);
    CHECK(jwt_keys_init(&k, SECRET, b64, err, sizeof err) == 0);
    CHECK(k.secret && k.has_ed25519);
    jwt_keys_clear(&k);
    CHECK(k.secret == NULL && !k.has_ed25519);
}

static void
test_sign(const jwt_keys_t *hs)
{
    const unsigned char *sec = (const unsigned char *)SECRET;
    char tok[1024], part[1024];
    unsigned char bin[1024];
    size_t len;
    jwt_claims_t c;

    int n = jwt_sign_hs256(sec, 32, "user-1", NOW, NOW + 3600, 0, tok, sizeof tok);
    CHECK(n > 0 && (size_t)n == strlen(tok));
    CHECK(s_verify(hs, tok, &c) == JWT_OK);
    CHECK_STR(c.sub, "user-1");
    CHECK(c.admin == 0 && c.exp == NOW + 3600 && c.has_iat && c.iat == NOW);

    /* The exact header and payload. */
    const char *d1 = strchr(tok, '.'), *d2 = strchr(d1 + 1, '.');
    snprintf(part, sizeof part, "%.*s", (int)(d1 - tok), tok);
    CHECK(sodium_base642bin(bin, sizeof bin, part, strlen(part), NULL, &len, NULL,
                            sodium_base64_VARIANT_URLSAFE_NO_PADDING) == 0);
    bin[len] = '\0';
    CHECK_STR((char *)bin, "{\"alg\":\"HS256\",\"typ\":\"JWT\"}");
    snprintf(part, sizeof part, "%.*s", (int)(d2 - d1 - 1), d1 + 1);
    CHECK(sodium_base642bin(bin, sizeof bin, part, strlen(part), NULL, &len, NULL,
                            sodium_base64_VARIANT_URLSAFE_NO_PADDING) == 0);
    bin[len] = '\0';
    CHECK_STR((char *)bin, "{\"sub\":\"user-1\",\"iat\":1700000000,\"exp\":1700003600}");

    n = jwt_sign_hs256(sec, 32, "root", NOW, NOW + 60, 1, tok, sizeof tok);
    CHECK(n > 0 && s_verify(hs, tok, &c) == JWT_OK && c.admin == 1);
    d1 = strchr(tok, '.');
    d2 = strchr(d1 + 1, '.');
    snprintf(part, sizeof part, "%.*s", (int)(d2 - d1 - 1), d1 + 1);
    CHECK(sodium_base642bin(bin, sizeof bin, part, strlen(part), NULL, &len, NULL,
                            sodium_base64_VARIANT_URLSAFE_NO_PADDING) == 0);
    bin[len] = '\0';
    CHECK_STR((char *)bin,
              "{\"sub\":\"root\",\"iat\":1700000000,\"exp\":1700000060,\"role\":\"admin\"}");

    /* The same token as signing the same JSON independently. */
    char ref[1024];
    s_sign(ref, sizeof ref, "{\"alg\":\"HS256\",\"typ\":\"JWT\"}", (const char *)bin, SIG_HS256,
           sec, 32);
    CHECK_STR(tok, ref);

    /* sub is escaped and comes back unchanged. */
    const char *odd = "a\"b\\c\x01\n\xc3\xa9/";
    CHECK(jwt_sign_hs256(sec, 32, odd, NOW, NOW + 60, 0, tok, sizeof tok) > 0);
    CHECK(s_verify(hs, tok, &c) == JWT_OK);
    CHECK_STR(c.sub, odd);

    char sub[300];
    memset(sub, 'x', sizeof sub);
    sub[255] = '\0';
    CHECK(jwt_sign_hs256(sec, 32, sub, NOW, NOW + 60, 0, tok, sizeof tok) > 0);
    CHECK(s_verify(hs, tok, &c) == JWT_OK && c.sub_len == 255);
    memset(sub, '"', 255); /* 510 bytes escaped: still fits 1024 */
    CHECK(jwt_sign_hs256(sec, 32, sub, NOW, NOW + 60, 0, tok, sizeof tok) > 0);
    CHECK(s_verify(hs, tok, &c) == JWT_OK && strcmp(c.sub, sub) == 0);
    memset(sub, '\x01', 255); /* 1530 bytes escaped: only in a larger buffer */
    CHECK(jwt_sign_hs256(sec, 32, sub, NOW, NOW + 60, 0, tok, sizeof tok) == -1);
    char big[4096];
    CHECK(jwt_sign_hs256(sec, 32, sub, NOW, NOW + 60, 0, big, sizeof big) > 1024);
    CHECK(s_verify(hs, big, &c) == JWT_OK && strcmp(c.sub, sub) == 0);
    sub[255] = 'x';
    sub[256] = '\0';
    CHECK(jwt_sign_hs256(sec, 32, sub, NOW, NOW + 60, 0, tok, sizeof tok) == -1);
    CHECK(jwt_sign_hs256(sec, 32, "", NOW, NOW + 60, 0, tok, sizeof tok) == -1);
    CHECK(jwt_sign_hs256(sec, 32, NULL, NOW, NOW + 60, 0, tok, sizeof tok) == -1);
    CHECK(jwt_sign_hs256(sec, 31, "u", NOW, NOW + 60, 0, tok, sizeof tok) == -1);
    CHECK(jwt_sign_hs256(sec, 32, "\xff", NOW, NOW + 60, 0, tok, sizeof tok) == -1);
    CHECK(jwt_sign_hs256(sec, 32, "u", NOW, NOW + 60, 0, tok, 40) == -1);
    CHECK(jwt_sign_hs256(sec, 32, "u", NOW, NOW + 60, 0, tok, 100) == -1);
    n = jwt_sign_hs256(sec, 32, "u", NOW, NOW + 60, 0, tok, sizeof tok);
    CHECK(n > 0 && jwt_sign_hs256(sec, 32, "u", NOW, NOW + 60, 0, tok, (size_t)n + 1) == n);
    CHECK(jwt_sign_hs256(sec, 32, "u", NOW, NOW + 60, 0, tok, (size_t)n) == -1);
    CHECK(jwt_sign_hs256(sec, 32, "u", INT64_MIN, INT64_MAX, 0, tok, sizeof tok) > 0);
    CHECK(s_verify(hs, tok, &c) == JWT_OK && c.exp == INT64_MAX && c.iat == INT64_MIN);
}

static void
test_messages(void)
{
    CHECK_STR(jwt_status_message(JWT_OK), "ok");
    CHECK_STR(jwt_status_message(JWT_MISSING), "missing token");
    CHECK_STR(jwt_status_message(JWT_MALFORMED), "malformed token");
    CHECK_STR(jwt_status_message(JWT_BAD_ALG), "token algorithm not accepted");
    CHECK_STR(jwt_status_message(JWT_BAD_SIGNATURE), "bad token signature");
    CHECK_STR(jwt_status_message(JWT_EXPIRED), "token expired");
    CHECK_STR(jwt_status_message(JWT_NOT_YET_VALID), "token not yet valid");
    CHECK_STR(jwt_status_message(JWT_MISSING_EXP), "token has no exp claim");
    CHECK_STR(jwt_status_message(JWT_BAD_CLAIMS), "token claims invalid");
}

int
main(void)
{
    if (sodium_init() < 0) {
        fprintf(stderr, "sodium_init failed\n");
        return 1;
    }
    crypto_sign_keypair(s_pk, s_sk);
    char pk64[64], err[256];
    s_b64(s_pk, 32, pk64, sizeof pk64, sodium_base64_VARIANT_ORIGINAL);
    jwt_keys_t hs, ed, both;
    CHECK(jwt_keys_init(&hs, SECRET, NULL, err, sizeof err) == 0);
    CHECK(jwt_keys_init(&ed, NULL, pk64, err, sizeof err) == 0);
    CHECK(jwt_keys_init(&both, SECRET, pk64, err, sizeof err) == 0);

    test_valid(&hs, &ed, &both);
    test_times(&hs);
    test_claims(&hs);
    test_header(&hs, &ed, &both);
    test_signature(&hs, &ed);
    test_shape(&hs);
    test_keys();
    test_sign(&hs);
    test_messages();

    jwt_keys_clear(&hs);
    jwt_keys_clear(&ed);
    jwt_keys_clear(&both);
    return check_report();
}
