/*
 * svc_process.c: a service's server process for end-to-end tests (see
 * svc_process.h). Blocking helpers: tests call them between loop runs.
 */
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <unistd.h>
#include <paywire/db.h>
#include "pw_test.h"
#include "svc_process.h"
#include "src/proto/grpc/health/v1/health.pb-c.h"

int svc_process_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    close(fd);
    return ntohs(a.sin_port);
}

void svc_process_prepare(svc_process *p)
{
    snprintf(p->dir, sizeof(p->dir), "/tmp/pw-%s-test-%ld", p->name, (long)getpid());
    char cmd[256];
    snprintf(cmd, sizeof(cmd), "bash %s/scripts/certs %s %s >/dev/null", PW_SOURCE_DIR, p->dir,
             p->name);
    assert_int_equal(system(cmd), 0);
    snprintf(p->conf_path, sizeof(p->conf_path), "%s/%s.conf", p->dir, p->name);
    p->port = svc_process_free_port();
    p->admin_port = svc_process_free_port();
}

void svc_process_start(svc_process *p, const char *database_url, const char *extra)
{
    FILE *f = fopen(p->conf_path, "w");
    assert_non_null(f);
    fprintf(f,
            "listen = 127.0.0.1:%d\nadmin_listen = 127.0.0.1:%d\ndatabase_url = %s\n"
            "tls_cert = %s/%s.crt\ntls_key = %s/%s.key\ntls_ca = %s/ca.crt\n"
            "internal_identities = spiffe://paywire/tests,spiffe://paywire/%s\n%s",
            p->port, p->admin_port, database_url, p->dir, p->name, p->dir, p->name, p->dir, p->name,
            extra ? extra : "");
    fclose(f);
    p->pid = fork();
    if (p->pid == 0) {
        char log[128];
        snprintf(log, sizeof(log), "%s/%s.log", p->dir, p->name);
        FILE *out = freopen(log, "a", stderr);
        (void)out;
        execl(p->binary, p->binary, "--config", p->conf_path, (char *)NULL);
        _exit(127);
    }
    assert_true(p->pid > 0);
}

int svc_process_health(pw_channel *ch, const char *service)
{
    Grpc__Health__V1__HealthCheckRequest req = GRPC__HEALTH__V1__HEALTH_CHECK_REQUEST__INIT;
    req.service = (char *)service;
    ProtobufCMessage *resp = NULL;
    pw_call_options o = {.timeout_ms = 1000, .wait_for_ready = 1};
    pw_status rv = pw_client_unary_blocking(ch, "/grpc.health.v1.Health/Check", &o, &req.base,
                                            &grpc__health__v1__health_check_response__descriptor,
                                            &resp, NULL, NULL);
    int st = rv == PW_OK ? (int)((Grpc__Health__V1__HealthCheckResponse *)resp)->status : -1;
    pw_protobuf_free(resp);
    return st;
}

void svc_process_wait_serving(svc_process *p, pw_channel *ch)
{
    for (int i = 0; i < 200; i++) {
        if (svc_process_health(ch, p->health_service) == 1) {
            return;
        }
        uv_sleep(50);
    }
    fail_msg("%s did not become SERVING (see %s/%s.log)", p->binary, p->dir, p->name);
}

pw_channel *svc_process_channel(svc_process *p, uv_loop_t *loop)
{
    static pw_tls_config tls;
    static char cert[128], key[128], ca[128];
    snprintf(cert, sizeof(cert), "%s/tests.crt", p->dir);
    snprintf(key, sizeof(key), "%s/tests.key", p->dir);
    snprintf(ca, sizeof(ca), "%s/ca.crt", p->dir);
    tls = (pw_tls_config){.cert_file = cert, .key_file = key, .ca_file = ca};
    char target[64];
    snprintf(target, sizeof(target), "localhost:%d", p->port);
    pw_channel_options o = {.tls = &tls, .backoff_initial_ms = 50, .backoff_max_ms = 200};
    pw_channel *ch;
    assert_int_equal(pw_channel_new(&ch, loop, target, &o), PW_OK);
    return ch;
}

void svc_process_stop(svc_process *p)
{
    if (p->pid <= 0) {
        return;
    }
    kill(p->pid, SIGTERM);
    int status = 0;
    waitpid(p->pid, &status, 0);
    p->pid = 0;
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        /* Its sanitizer report or its log's end, before the directory is cleaned up. */
        print_message("%s: %s %d; the end of its log:\n", p->name,
                      WIFSIGNALED(status) ? "killed by signal" : "exit status",
                      WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
        char cmd[400];
        snprintf(cmd, sizeof(cmd),
                 "(grep -m1 -A40 'ERROR: .*Sanitizer' %s/%s.log || tail -n 30 %s/%s.log) >&2",
                 p->dir, p->name, p->dir, p->name);
        if (system(cmd) != 0) {
            print_message("(no log)\n");
        }
    }
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
}

void svc_process_cleanup(svc_process *p)
{
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", p->dir);
    assert_int_equal(system(cmd), 0);
}

void svc_process_migrate(const char *url, const char *dir, const char *lock)
{
    char err[512];
    if (pw_db_migrate(url, dir, lock, NULL, err, sizeof(err)) != PW_OK) {
        fail_msg("migrations %s: %s", dir, err);
    }
}

void svc_process_start_serving(svc_process *p, uv_loop_t *loop, const char *database_url,
                               const char *extra)
{
    svc_process_start(p, database_url, extra);
    pw_channel *c = svc_process_channel(p, loop);
    svc_process_wait_serving(p, c);
    pw_channel_close(c, NULL, NULL);
}
