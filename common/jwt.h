/*  jwt.h: JSON Web Token verification (and HS256 minting) with libsodium.
 *
 *  Accepts HS256 (HMAC-SHA-256 with a shared secret of at least 32 bytes,
 *  RFC 7518) and EdDSA (Ed25519 public key). The header's alg must match a
 *  configured key: "none" and every other alg are rejected. Signatures are
 *  compared in constant time; base64url is decoded strictly. Claims: exp is
 *  required, nbf and iat are honoured, sub is the user id, role "admin"
 *  marks an admin token. Nothing here logs, and no error text contains the
 *  token.
 */
#ifndef TC_JWT_H
#define TC_JWT_H

#include <stddef.h>
#include <stdint.h>

#define JWT_SECRET_MIN 32   /* bytes, RFC 7518 section 3.2 */
#define JWT_TOKEN_MAX  4096 /* longer tokens are rejected as malformed */
#define JWT_SUB_MAX    255  /* bytes of sub kept */
#define JWT_IAT_SKEW_S 60   /* iat may be this far in the future (clock skew) */

typedef struct jwt_keys {
    unsigned char *secret; /* HS256 key bytes (owned), NULL if not configured */
    size_t secret_len;
    int has_ed25519;
    unsigned char ed25519_pk[32];
} jwt_keys_t;

typedef enum {
    JWT_OK = 0,
    JWT_MISSING,       /* "missing token" */
    JWT_MALFORMED,     /* "malformed token" (structure, base64url, JSON) */
    JWT_BAD_ALG,       /* "token algorithm not accepted" (none, mismatch, unknown) */
    JWT_BAD_SIGNATURE, /* "bad token signature" */
    JWT_EXPIRED,       /* "token expired" */
    JWT_NOT_YET_VALID, /* "token not yet valid" (nbf, or iat in the future) */
    JWT_MISSING_EXP,   /* "token has no exp claim" */
    JWT_BAD_CLAIMS     /* "token claims invalid" (sub missing/not a string, bad types) */
} jwt_status_t;

typedef struct jwt_claims {
    char sub[JWT_SUB_MAX + 1]; /* NUL-terminated */
    size_t sub_len;
    int64_t exp; /* seconds since the Unix epoch */
    int has_nbf, has_iat;
    int64_t nbf, iat;
    int admin;   /* role == "admin" */
    int service; /* role == "service": a backend acting for any user (job submits) */
} jwt_claims_t;

/*  Sets up keys from configuration text: secret is the raw bytes of the value
 *  (NULL or "" if none; fewer than 32 bytes is refused); public_key is an
 *  Ed25519 public key in base64 (standard or URL-safe, padding optional), as
 *  32 raw bytes or a 44-byte DER SubjectPublicKeyInfo, or a PEM "PUBLIC KEY"
 *  block (NULL or "" if none). At least one must be given. Returns 0, or -1
 *  with a sentence in err (never echoing the secret). */
int jwt_keys_init(jwt_keys_t *keys, const char *secret, const char *public_key, char *err,
                  size_t errlen);
/*  Wipes and frees the secret. */
void jwt_keys_clear(jwt_keys_t *keys);

/*  Verifies token (len bytes, not necessarily NUL-terminated) at time now_s
 *  (seconds since the Unix epoch). Fills claims on JWT_OK. */
jwt_status_t jwt_verify(const jwt_keys_t *keys, const char *token, size_t len, int64_t now_s,
                        jwt_claims_t *claims);

/*  The sentence for a status, e.g. "token expired". */
const char *jwt_status_message(jwt_status_t status);

/*  Mints an HS256 token for sub, expiring at exp (seconds), issued at iat,
 *  with "role":"admin" if admin. out must hold at least 1024 bytes; sub must
 *  be at most 255 bytes. Returns the token length, or -1. */
int jwt_sign_hs256(const unsigned char *secret, size_t secret_len, const char *sub, int64_t iat,
                   int64_t exp, int admin, char *out, size_t outlen);

#endif
