/*  version_lws.c: run-time check of libwebsockets, for the programs that
 *  link it. */
#include "version.h"

#include <libwebsockets.h>
#include <stdio.h>

int
version_check_lws(char *err, size_t errlen)
{
    int major = 0, minor = 0;
    /* lws changes its ABI with every minor release. */
    if (sscanf(lws_get_library_version(), "%d.%d", &major, &minor) != 2 ||
        major != LWS_LIBRARY_VERSION_MAJOR || minor != LWS_LIBRARY_VERSION_MINOR ||
        major * 10000 + minor * 100 < TC_MIN_LWS) {
        snprintf(err, errlen,
                 "libwebsockets %s is loaded but taskcast was built for %s: reinstall "
                 "libwebsockets17 or rebuild",
                 lws_get_library_version(), LWS_LIBRARY_VERSION);
        return -1;
    }
    return 0;
}
