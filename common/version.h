/*  version.h: the libraries a program was built with must be the ones it
 *  runs with. Every program calls version_check_libs() first (and
 *  version_check_lws() if it uses libwebsockets), so a library swapped under
 *  it stops the start with a sentence instead of a crash.
 */
#ifndef TC_VERSION_H
#define TC_VERSION_H

#include <stddef.h>

#define TASKCAST_VERSION "0.1.0"

/*  Initialises libsodium and compares the run-time versions of libzmq,
 *  libsodium and msgpack-c with the build-time ones and the minimums.
 *  Returns 0, or -1 with a sentence in err. */
int version_check_libs(char *err, size_t errlen);

/*  Same for libwebsockets (in the tc_lws library: only programs that link
 *  libwebsockets call it). */
int version_check_lws(char *err, size_t errlen);

/*  "taskcast 0.1.0 (libzmq 4.3.4, libsodium 1.0.18, msgpack-c 4.0.0)" */
void version_describe(char *out, size_t outlen);

#endif
