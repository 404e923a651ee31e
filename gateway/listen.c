/*  listen.c: the listening socket, opened by us with SO_REUSEPORT so that
 *  several gateway processes can share one port (Debian's lws 4.1 cannot
 *  share its own listener); the loop watches it, and every accepted
 *  connection is handed to lws as if lws had accepted it.
 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "gateway.h"

#define S_ACCEPT_BATCH 256 /* connections taken per wake-up */

int
gw_listen_open(gateway_t *gw)
{
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    char port[8];
    snprintf(port, sizeof port, "%d", gw->port);
    int rc = getaddrinfo(gw->host[0] ? gw->host : NULL, port, &hints, &res);
    if (rc != 0) {
        log_error(&gw->log, "cannot resolve listen address %s: %s", gw->host, gai_strerror(rc));
        return -1;
    }
    int fd = socket(res->ai_family, res->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0 ||
        bind(fd, res->ai_addr, res->ai_addrlen) != 0 || listen(fd, 4096) != 0) {
        log_error(&gw->log, "cannot listen on %s:%d: %s", gw->host, gw->port, strerror(errno));
        if (fd >= 0)
            close(fd);
        freeaddrinfo(res);
        return -1;
    }
    freeaddrinfo(res);
    gw->listen_fd = fd;
    /* A spare descriptor: at the open-file limit it is given up for a
     * moment so the pending connection can be accepted and closed, instead
     * of the listener spinning on a connection it cannot take. */
    gw->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    return 0;
}

void
gw_listen_accept(gateway_t *gw)
{
    for (int i = 0; i < S_ACCEPT_BATCH; i++) {
        int fd = accept4(gw->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if ((errno == EMFILE || errno == ENFILE) && gw->spare_fd >= 0) {
                close(gw->spare_fd);
                fd = accept4(gw->listen_fd, NULL, NULL, SOCK_CLOEXEC);
                if (fd >= 0)
                    close(fd);
                gw->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
                log_warn(&gw->log, "at the open-file limit: refused a connection");
                continue;
            }
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                log_warn(&gw->log, "accept: %s", strerror(errno));
            return;
        }
        int one = 1;
        (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        if (!lws_adopt_socket_vhost(gw->vhost, fd)) {
            /* lws closes the descriptor when adoption fails */
            log_warn(&gw->log, "could not take a connection (out of memory or at the limit)");
        }
    }
}

void
gw_listen_close(gateway_t *gw)
{
    if (gw->listen_fd >= 0)
        close(gw->listen_fd);
    if (gw->spare_fd >= 0)
        close(gw->spare_fd);
    gw->listen_fd = gw->spare_fd = -1;
}
