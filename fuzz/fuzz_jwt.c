/*  fuzz_jwt.c: token verification (common/jwt.c) with an HS256 secret and
 *  an Ed25519 public key configured (fixed test keys).
 *
 *  The first input byte picks how the rest becomes a token:
 *    0  the token as it is (what a client puts in ?token= or a header);
 *    1  HEADER NUL CLAIMS: the harness encodes both and signs them with the
 *       HS256 secret, so the header and claims readers behind the
 *       signature check are reached too;
 *    2  the same, signed with the Ed25519 key;
 *    3  P1 P2 C then HEADER NUL CLAIMS, signed as byte 0 bit 2 says: the
 *       token with its byte at (P1 P2) % length replaced by C, a structured
 *       mutation of a validly signed token;
 *    4  the rest as sub, minted by jwt_sign_hs256().
 *  Checks: the status is one of jwt_status_t; a token accepted with both
 *  keys is accepted with its own key alone and refused as bad_alg by the
 *  other; accepted claims are consistent (sub without NUL, exp after now,
 *  nbf and iat not in the future); a changed byte never verifies; what
 *  jwt_sign_hs256() mints verifies to the same sub.
 */
#include <sodium.h>
#include <string.h>

#include "fuzz.h"
#include "jwt.h"

#define S_NOW    INT64_C(1700000000)
#define S_SECRET "fuzz-hs256-secret-0123456789abcdef" /* 34 bytes */

/*  The Ed25519 key pair's seed (tests/e2e and fuzz/corpus use the same). */
static const unsigned char s_seed[crypto_sign_SEEDBYTES] = {
    1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11, 12, 13, 14, 15, 16,
    17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32};

static jwt_keys_t s_both, s_hs, s_ed;
static unsigned char s_sk[crypto_sign_SECRETKEYBYTES];

int LLVMFuzzerInitialize(int *argc, char ***argv);

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    unsigned char pk[crypto_sign_PUBLICKEYBYTES];
    char pk64[sodium_base64_ENCODED_LEN(sizeof pk, sodium_base64_VARIANT_ORIGINAL)], err[256];
    FUZZ_CHECK(sodium_init() >= 0);
    crypto_sign_seed_keypair(pk, s_sk, s_seed);
    sodium_bin2base64(pk64, sizeof pk64, pk, sizeof pk, sodium_base64_VARIANT_ORIGINAL);
    FUZZ_CHECK(jwt_keys_init(&s_both, S_SECRET, pk64, err, sizeof err) == 0);
    FUZZ_CHECK(jwt_keys_init(&s_hs, S_SECRET, NULL, err, sizeof err) == 0);
    FUZZ_CHECK(jwt_keys_init(&s_ed, NULL, pk64, err, sizeof err) == 0);
    return 0;
}

static void
s_b64url(char *out, size_t *pos, const void *bin, size_t len)
{
    size_t need = sodium_base64_ENCODED_LEN(len, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    sodium_bin2base64(out + *pos, need, bin, len, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    *pos += need - 1;
}

/*  base64url(header).base64url(claims).signature into out (large enough). */
static size_t
s_sign(char *out, const uint8_t *header, size_t hlen, const uint8_t *claims, size_t clen, int eddsa)
{
    size_t pos = 0;
    s_b64url(out, &pos, header, hlen);
    out[pos++] = '.';
    s_b64url(out, &pos, claims, clen);
    unsigned char sig[crypto_sign_BYTES];
    size_t siglen;
    if (eddsa) {
        crypto_sign_detached(sig, NULL, (const unsigned char *)out, pos, s_sk);
        siglen = crypto_sign_BYTES;
    }
    else {
        crypto_auth_hmacsha256_state st;
        crypto_auth_hmacsha256_init(&st, (const unsigned char *)S_SECRET, strlen(S_SECRET));
        crypto_auth_hmacsha256_update(&st, (const unsigned char *)out, pos);
        crypto_auth_hmacsha256_final(&st, sig);
        siglen = crypto_auth_hmacsha256_BYTES;
    }
    out[pos++] = '.';
    s_b64url(out, &pos, sig, siglen);
    return pos;
}

static jwt_status_t
s_verify(const char *token, size_t len, jwt_claims_t *c)
{
    jwt_claims_t hc, ec;
    jwt_status_t both = jwt_verify(&s_both, token, len, S_NOW, c);
    jwt_status_t hs = jwt_verify(&s_hs, token, len, S_NOW, &hc);
    jwt_status_t ed = jwt_verify(&s_ed, token, len, S_NOW, &ec);
    FUZZ_CHECK(both <= JWT_BAD_CLAIMS && hs <= JWT_BAD_CLAIMS && ed <= JWT_BAD_CLAIMS);
    FUZZ_CHECK(strcmp(jwt_status_message(both), "token rejected") != 0);
    FUZZ_CHECK(both == hs || both == ed);
    if (both == JWT_OK) {
        FUZZ_CHECK((hs == JWT_OK && ed == JWT_BAD_ALG) || (ed == JWT_OK && hs == JWT_BAD_ALG));
        FUZZ_CHECK(memcmp(c, hs == JWT_OK ? &hc : &ec, sizeof *c) == 0);
        FUZZ_CHECK(c->sub_len >= 1 && c->sub_len <= JWT_SUB_MAX && strlen(c->sub) == c->sub_len);
        FUZZ_CHECK(c->exp > S_NOW && (!c->has_nbf || c->nbf <= S_NOW));
        FUZZ_CHECK(!c->has_iat || c->iat <= S_NOW + JWT_IAT_SKEW_S);
        FUZZ_CHECK(c->admin == 0 || c->admin == 1);
    }
    else {
        jwt_claims_t zero;
        memset(&zero, 0, sizeof zero);
        FUZZ_CHECK(memcmp(c, &zero, sizeof zero) == 0); /* nothing of a refused token */
    }
    return both;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char token[3 * 4096];
    jwt_claims_t c;
    if (size < 1)
        return 0;
    uint8_t mode = data[0];
    data++;
    size--;
    switch (mode & 3) {
    case 0:
        if ((mode >> 2) == 1 && size > 0 && size <= 2 * JWT_SUB_MAX) {
            /* 4: minted by jwt_sign_hs256() */
            char sub[2 * JWT_SUB_MAX + 1];
            memcpy(sub, data, size);
            sub[size] = '\0';
            int admin = data[0] & 1;
            int n = jwt_sign_hs256((const unsigned char *)S_SECRET, strlen(S_SECRET), sub, S_NOW,
                                   S_NOW + 60, admin, token, sizeof token);
            if (n < 0) /* a sub that is empty, too long or not UTF-8 */
                return 0;
            FUZZ_CHECK(s_verify(token, (size_t)n, &c) == JWT_OK);
            FUZZ_CHECK(strcmp(c.sub, sub) == 0 && c.admin == admin && c.exp == S_NOW + 60);
            return 0;
        }
        (void)s_verify((const char *)data, size, &c);
        return 0;
    case 1:
    case 2: {
        const uint8_t *nul = memchr(data, '\0', size);
        if (!nul || size > 4096)
            return 0;
        size_t hlen = (size_t)(nul - data);
        size_t n = s_sign(token, data, hlen, nul + 1, size - hlen - 1, (mode & 3) == 2);
        (void)s_verify(token, n, &c);
        return 0;
    }
    default: {
        if (size < 3)
            return 0;
        unsigned at = (unsigned)data[0] << 8 | data[1];
        char with = (char)data[2];
        data += 3;
        size -= 3;
        const uint8_t *nul = memchr(data, '\0', size);
        if (!nul || size > 4096)
            return 0;
        size_t hlen = (size_t)(nul - data);
        size_t n = s_sign(token, data, hlen, nul + 1, size - hlen - 1, (mode & 4) != 0);
        at %= (unsigned)n;
        (void)s_verify(token, n, &c);
        if (token[at] == with)
            return 0;
        token[at] = with;
        /* No signature survives a changed byte, and the claims are read only
         * after the signature is checked. */
        jwt_status_t changed = s_verify(token, n, &c);
        FUZZ_CHECK(changed == JWT_MALFORMED || changed == JWT_BAD_ALG ||
                   changed == JWT_BAD_SIGNATURE);
        return 0;
    }
    }
}
