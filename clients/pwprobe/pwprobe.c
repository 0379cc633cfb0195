/*
 * pwprobe: the container health check of the service images (docs/deploy.md).
 *
 *   pwprobe [HOST:]PORT [PATH]
 *
 * Sends one HTTP/1.1 GET for PATH (default /readyz) to the service's admin
 * listener and exits 0 when the answer is 2xx, 1 when it is anything else or
 * no answer comes within 3 seconds, 2 on bad arguments. HOST is a numeric
 * IPv4 or IPv6 address (default 127.0.0.1): the probe runs inside the task,
 * needs no resolver, and links only libc, so an image without a shell can run
 * it as its HEALTHCHECK.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

enum { PROBE_TIMEOUT_MS = 3000 };

/* Fills *ss from "[v6]:port", "v4:port" or "port"; returns 0, or -1 on bad input. */
static int probe_parse(const char *arg, struct sockaddr_storage *ss, socklen_t *len)
{
    char host[64] = "127.0.0.1";
    const char *port = arg;
    const char *colon = strrchr(arg, ':');
    if (colon != NULL) {
        size_t n = (size_t)(colon - arg);
        if (n > 1 && arg[0] == '[' && arg[n - 1] == ']') {
            arg++;
            n -= 2;
        }
        if (n == 0 || n >= sizeof(host)) {
            return -1;
        }
        memcpy(host, arg, n);
        host[n] = '\0';
        port = colon + 1;
    }
    char *end;
    long p = strtol(port, &end, 10);
    if (*port == '\0' || *end != '\0' || p < 1 || p > 65535) {
        return -1;
    }
    memset(ss, 0, sizeof(*ss));
    struct sockaddr_in *v4 = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)ss;
    if (inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons((unsigned short)p);
        *len = sizeof(*v4);
        return 0;
    }
    if (inet_pton(AF_INET6, host, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons((unsigned short)p);
        *len = sizeof(*v6);
        return 0;
    }
    return -1;
}

/* Waits until fd is ready for events; returns 0, or -1 on timeout or error. */
static int probe_wait(int fd, short events)
{
    struct pollfd pfd = {fd, events, 0};
    int rv;
    do {
        rv = poll(&pfd, 1, PROBE_TIMEOUT_MS);
    } while (rv < 0 && errno == EINTR);
    return rv == 1 ? 0 : -1;
}

int main(int argc, char **argv)
{
    struct sockaddr_storage ss;
    socklen_t len;
    const char *path = argc > 2 ? argv[2] : "/readyz";
    if (argc < 2 || argc > 3 || path[0] != '/' || strpbrk(path, " \r\n") != NULL ||
        strlen(path) > 200 || probe_parse(argv[1], &ss, &len) != 0) {
        fprintf(stderr,
                "usage: pwprobe [HOST:]PORT [PATH]   (HOST numeric, PATH /readyz by default)\n");
        return 2;
    }
    int fd = socket(ss.ss_family, SOCK_STREAM, 0);
    if (fd < 0) {
        perror("pwprobe: socket");
        return 1;
    }
    char req[256];
    int n = snprintf(req, sizeof(req),
                     "GET %s HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n", path);
    char resp[64];
    size_t got = 0;
    int ok = connect(fd, (struct sockaddr *)&ss, len) == 0 && probe_wait(fd, POLLOUT) == 0 &&
             write(fd, req, (size_t)n) == n;
    while (ok && got < sizeof(resp) - 1 && probe_wait(fd, POLLIN) == 0) {
        ssize_t r = read(fd, resp + got, sizeof(resp) - 1 - got);
        if (r <= 0) {
            break;
        }
        got += (size_t)r;
    }
    close(fd);
    resp[got] = '\0';
    /* "HTTP/1.1 200 OK": the status code's first digit. */
    if (got >= 12 && strncmp(resp, "HTTP/1.", 7) == 0 && resp[9] == '2') {
        return 0;
    }
    fprintf(stderr, "pwprobe: %s%s: %s\n", argv[1], path,
            got > 0 ? strtok(resp, "\r\n") : "no answer");
    return 1;
}
