/*
 * libFuzzer target: a whole paywire server (cleartext port: HTTP/2 with the
 * gRPC protocol, Connect JSON, and HTTP/1.1 detection) fed one connection's
 * bytes per input over real loopback TCP. The client half-closes after
 * writing, reads whatever comes back, then closes; the server must survive
 * every input, answer or drop the connection, and free it (checked: the
 * connection count returns to 0). ASan/UBSan and LeakSanitizer watch the
 * rest. One server lives for the whole run, as it would in production, serving
 * the pwtest.Json test service (tests/runtime/builtins/json_service.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <paywire/json.h>
#include <paywire/paywire.h>
#include "json_service.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uv_loop_t loop;
static pw_server *server;
static int port;

static void start_server(void)
{
    uv_loop_init(&loop);
    pw_server_options o = {.max_recv_message_size = 65536};
    if (pw_server_new(&server, &loop, &o) != PW_OK) {
        abort();
    }
    if (pw_test_json_service_add(server, NULL) != PW_OK || pw_json_enable(server) != PW_OK ||
        pw_server_listen(server, "127.0.0.1:0", NULL, &port) != PW_OK) {
        abort();
    }
}

static int connect_client(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
        abort(); /* loopback connect completes in the kernel's backlog */
    }
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    return fd;
}

/* Lets the server run, draining its answers, until it closes or `turns` pass. */
static int serve(int fd, int turns)
{
    char buf[65536];
    for (int i = 0; i < turns; i++) {
        uv_run(&loop, UV_RUN_NOWAIT);
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 1) <= 0) {
            continue;
        }
        ssize_t n = recv(fd, buf, sizeof(buf), 0);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
            return 1; /* closed by the server (or reset) */
        }
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (server == NULL) {
        start_server();
    }
    int fd = connect_client();
    size_t sent = 0;
    while (sent < size) {
        ssize_t n = send(fd, data + sent, size - sent, MSG_NOSIGNAL);
        if (n <= 0) {
            if (n < 0 && errno == EAGAIN) {
                serve(fd, 1);
                continue;
            }
            break; /* the server closed already */
        }
        sent += (size_t)n;
    }
    shutdown(fd, SHUT_WR);
    serve(fd, 20);
    /* A connection the server still holds ends with a reset, not a second FIN:
     * fewer of the run's tens of thousands of sockets wait in TIME_WAIT. */
    struct linger abortive = {.l_onoff = 1, .l_linger = 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &abortive, sizeof(abortive));
    close(fd);
    /* The server must notice and free the connection (and cancel its calls). */
    for (int i = 0; i < 2000 && pw_server_connection_count(server) > 0; i++) {
        uv_run(&loop, UV_RUN_NOWAIT);
        if (i > 10) {
            usleep(100);
        }
    }
    if (pw_server_connection_count(server) > 0) {
        fprintf(stderr, "fuzz_server: a connection outlived its peer by 200 ms\n");
        abort();
    }
    return 0;
}
