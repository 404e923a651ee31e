/*  version.c: run-time library version checks. */
#include "version.h"

#include <msgpack.h>
#include <sodium.h>
#include <stdio.h>
#include <zmq.h>

int
version_check_libs(char *err, size_t errlen)
{
    if (sodium_init() < 0) {
        snprintf(err, errlen, "libsodium failed to initialise");
        return -1;
    }
    int maj, min, pat;
    zmq_version(&maj, &min, &pat);
    if (maj != ZMQ_VERSION_MAJOR || maj * 10000 + min * 100 < TC_MIN_ZMQ) {
        snprintf(err, errlen,
                 "libzmq %d.%d.%d is loaded but taskcast was built for %d.%d.%d "
                 "(needs 4.3 or newer with the same major version): reinstall libzmq5 "
                 "or rebuild",
                 maj, min, pat, ZMQ_VERSION_MAJOR, ZMQ_VERSION_MINOR, ZMQ_VERSION_PATCH);
        return -1;
    }
    if (sodium_library_version_major() != SODIUM_LIBRARY_VERSION_MAJOR ||
        sodium_library_version_minor() < SODIUM_LIBRARY_VERSION_MINOR) {
        snprintf(err, errlen,
                 "libsodium %s is loaded but taskcast was built for %s: reinstall "
                 "libsodium23 or rebuild",
                 sodium_version_string(), SODIUM_VERSION_STRING);
        return -1;
    }
    if (msgpack_version_major() != MSGPACK_VERSION_MAJOR) {
        snprintf(err, errlen,
                 "msgpack-c %s is loaded but taskcast was built for %s: reinstall "
                 "libmsgpackc2 or rebuild",
                 msgpack_version(), MSGPACK_VERSION);
        return -1;
    }
    return 0;
}

void
version_describe(char *out, size_t outlen)
{
    int maj, min, pat;
    zmq_version(&maj, &min, &pat);
    snprintf(out, outlen, "taskcast %s (libzmq %d.%d.%d, libsodium %s, msgpack-c %s)",
             TASKCAST_VERSION, maj, min, pat, sodium_version_string(), msgpack_version());
}
