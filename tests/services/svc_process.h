#ifndef PAYWIRE_TESTS_SVC_PROCESS_H
#define PAYWIRE_TESTS_SVC_PROCESS_H

/*
 * A business service's server process for an end-to-end test: certificates
 * from scripts/certs (the test calls as spiffe://paywire/tests), a config
 * file, the binary started with its stderr in DIR/NAME.log, health waited
 * for, mTLS channels to it, and a stop that asserts a clean exit (exit 0: no
 * leak, no sanitizer report).
 */
#include <sys/types.h>
#include <uv.h>
#include <paywire/paywire.h>

typedef struct svc_process {
    /** "finance": the binary's log DIR/finance.log and certificate DIR/finance.crt. */
    const char *name;
    const char *binary;
    /** The gRPC service health reports on. */
    const char *health_service;
    char dir[64];
    char conf_path[128];
    int port;
    int admin_port;
    pid_t pid;
} svc_process;

/** A free TCP port on 127.0.0.1. */
int svc_process_free_port(void);
/** Makes p->dir with certificates and picks the ports (p->name, binary, health_service set). */
void svc_process_prepare(svc_process *p);
/**
 * Writes the config: listen, admin_listen, database_url, TLS, internal_identities, then
 * the lines of extra (may be NULL), and starts the server.
 */
void svc_process_start(svc_process *p, const char *database_url, const char *extra);
/** Health of the process's service through ch: 1 SERVING, 2 NOT_SERVING, -1 no answer. */
int svc_process_health(pw_channel *ch, const char *service);
/** Waits (10 s) until health through ch is SERVING; fails the test otherwise. */
void svc_process_wait_serving(svc_process *p, pw_channel *ch);
/** An mTLS channel (identity spiffe://paywire/tests) to the process on loop. */
pw_channel *svc_process_channel(svc_process *p, uv_loop_t *loop);
/** SIGTERM, and asserts the process drained and exited 0. */
void svc_process_stop(svc_process *p);
/** Applies dir's migrations to the database at url under the advisory lock (pw_db_migrate); fails
 * the test, naming dir, if they do not apply. */
void svc_process_migrate(const char *url, const char *dir, const char *lock);
/** svc_process_start, then waits on a channel of its own on loop (closed after) until p is SERVING.
 */
void svc_process_start_serving(svc_process *p, uv_loop_t *loop, const char *database_url,
                               const char *extra);
/** Removes p->dir. */
void svc_process_cleanup(svc_process *p);

#endif
