/*  json.h: a strict RFC 8259 JSON parser that does not allocate.
 *
 *  Used for JWT headers and claims, and by taskcast-cli to turn --data JSON
 *  into msgpack. json_parse() fills a caller-supplied token array (in the
 *  style of jsmn): every value is a token with its byte span and, for arrays
 *  and objects, its child count; an object's children alternate key,
 *  value. Strings are validated (escapes, UTF-8, surrogate pairs) but left
 *  escaped in the text; json_string_copy() unescapes.
 */
#ifndef TC_JSON_H
#define TC_JSON_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"

typedef enum {
    JSON_NULL,
    JSON_FALSE,
    JSON_TRUE,
    JSON_NUMBER,
    JSON_STRING, /* span excludes the quotes */
    JSON_ARRAY,
    JSON_OBJECT
} json_type_t;

typedef struct json_tok {
    json_type_t type;
    uint32_t start, end; /* byte span in the text */
    uint32_t count;      /* ARRAY: elements; OBJECT: key/value pairs */
    uint32_t next;       /* index of the first token after this subtree */
} json_tok_t;

#define JSON_E_SYNTAX -1 /* not valid JSON (or trailing bytes) */
#define JSON_E_TOKENS -2 /* more tokens than max_toks */
#define JSON_E_DEPTH  -3 /* nested deeper than max_depth */

/*  Parses exactly one JSON value (surrounding whitespace allowed). Returns
 *  the number of tokens used (>= 1), or a JSON_E_* code. */
int json_parse(const char *text, size_t len, json_tok_t *toks, size_t max_toks, int max_depth);

/*  Index of the value for key in the object token obj, or -1. Keys are
 *  compared after unescaping. */
int json_object_get(const char *text, const json_tok_t *toks, int obj, const char *key);

/*  Unescapes a STRING token into out (NUL-terminated). Returns its length, or
 *  -1 if it does not fit. */
int json_string_copy(const char *text, const json_tok_t *tok, char *out, size_t outlen);

/*  1 if the STRING token equals the literal after unescaping. */
int json_string_eq(const char *text, const json_tok_t *tok, const char *lit);

/*  Reads a NUMBER token as an integer. A fraction is truncated toward zero
 *  (JWT NumericDate allows them). Returns 0, or -1 if not a number or out of
 *  int64 range. */
int json_number_i64(const char *text, const json_tok_t *tok, int64_t *out);

/*  Converts one JSON text to msgpack appended to out: integers become
 *  msgpack integers exactly (int64/uint64 range), other numbers float64,
 *  strings str, objects maps. Returns 0, or -1 with a sentence in err. */
int json_to_msgpack(const char *text, size_t len, buf_t *out, char *err, size_t errlen);

#endif
