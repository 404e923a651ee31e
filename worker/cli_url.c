/*  cli_url.c: the gateway base URL taskcast-cli watch connects to. */
#include <stdio.h>
#include <string.h>

#include "cli.h"

/* cli_url_parse: see cli.h */
int
cli_url_parse(const char *text, cli_url_t *url, char *err, size_t errlen)
{
    memset(url, 0, sizeof *url);
    const char *p;
    if (strncmp(text, "ws://", 5) == 0)
        p = text + 5;
    else if (strncmp(text, "wss://", 6) == 0) {
        p = text + 6;
        url->tls = 1;
    }
    else {
        snprintf(err, errlen, "the URL must start with ws:// or wss://");
        return -1;
    }
    const char *host = p, *host_end;
    if (*p == '[') {
        host = p + 1;
        host_end = strchr(host, ']');
        if (!host_end) {
            snprintf(err, errlen, "the URL has an unclosed '[' in its host");
            return -1;
        }
        p = host_end + 1;
    }
    else {
        host_end = p + strcspn(p, ":/?#");
        p = host_end;
    }
    size_t hl = (size_t)(host_end - host);
    if (hl == 0 || hl >= sizeof url->host) {
        snprintf(err, errlen, "the URL has no host, or one that is too long");
        return -1;
    }
    memcpy(url->host, host, hl);
    url->port = url->tls ? 443 : 80;
    int explicit_port = 0;
    if (*p == ':') {
        unsigned port = 0;
        p++;
        if (*p < '0' || *p > '9') {
            snprintf(err, errlen, "the URL's port is not a number");
            return -1;
        }
        while (*p >= '0' && *p <= '9' && port <= 65535)
            port = port * 10 + (unsigned)(*p++ - '0');
        if (port == 0 || port > 65535) {
            snprintf(err, errlen, "the URL's port must be 1..65535");
            return -1;
        }
        url->port = (int)port;
        explicit_port = 1;
    }
    if (*p && *p != '/') {
        snprintf(err, errlen, "the URL must not have a query or fragment: give the base URL");
        return -1;
    }
    size_t pl = strlen(p);
    if (strcspn(p, "?#") != pl) {
        snprintf(err, errlen, "the URL must not have a query or fragment: give the base URL");
        return -1;
    }
    while (pl > 0 && p[pl - 1] == '/')
        pl--;
    if (pl >= sizeof url->prefix) {
        snprintf(err, errlen, "the URL's path is too long");
        return -1;
    }
    memcpy(url->prefix, p, pl);
    int v6 = strchr(url->host, ':') != NULL;
    if (explicit_port)
        snprintf(url->host_header, sizeof url->host_header, "%s%s%s:%d", v6 ? "[" : "", url->host,
                 v6 ? "]" : "", url->port);
    else
        snprintf(url->host_header, sizeof url->host_header, "%s%s%s", v6 ? "[" : "", url->host,
                 v6 ? "]" : "");
    return 0;
}

/* cli_url_escape: see cli.h */
int
cli_url_escape(const char *s, char *out, size_t outlen)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t w = 0;
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        int plain = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                    c == '-' || c == '.' || c == '_' || c == '~';
        if (w + (plain ? 1 : 3) >= outlen)
            return -1;
        if (plain)
            out[w++] = (char)c;
        else {
            out[w++] = '%';
            out[w++] = hex[c >> 4];
            out[w++] = hex[c & 15];
        }
    }
    if (w >= outlen)
        return -1;
    out[w] = '\0';
    return 0;
}
