/*
 * health.c: grpc.health.v1.Health. Statuses live in a small table per server;
 * Watch calls stay open and get a message whenever their service's status
 * changes. The registry is freed by the server's CLOSED hook, after every
 * call (Watch included) has been cancelled and finished.
 */
#include <string.h>
#include <paywire/alloc.h>
#include <paywire/builtins.h>
#include "src/proto/grpc/health/v1/health.pw.h"

typedef struct health_entry {
    char *service;
    pw_health_status status;
} health_entry;

typedef struct watcher {
    struct watcher *next;
    struct watcher *prev;
    pw_call *call;
    char *service;
} watcher;

struct pw_health {
    health_entry *entries;
    size_t count;
    watcher watchers; /* list head */
};

static health_entry *health_find(pw_health *h, const char *service)
{
    for (size_t i = 0; i < h->count; i++) {
        if (strcmp(h->entries[i].service, service) == 0) {
            return &h->entries[i];
        }
    }
    return NULL;
}

static pw_status send_status(pw_call *call, int status)
{
    Grpc__Health__V1__HealthCheckResponse r = GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__INIT;
    r.status = (Grpc__Health__V1__HealthCheckResponse__ServingStatus)status;
    return grpc_health_v1_health_watch_send(call, &r);
}

pw_status pw_health_set(pw_health *h, const char *service, pw_health_status status)
{
    health_entry *e = health_find(h, service);
    if (e == NULL) {
        health_entry *entries = pw_realloc(h->entries, (h->count + 1) * sizeof(*entries));
        char *name = pw_strdup(service);
        if (entries == NULL || name == NULL) {
            pw_free(name);
            if (entries != NULL) {
                h->entries = entries;
            }
            return PW_ERRNO(ENOMEM);
        }
        h->entries = entries;
        e = &h->entries[h->count++];
        *e = (health_entry){name, PW_HEALTH_UNKNOWN};
    }
    if (e->status == status) {
        return PW_OK;
    }
    e->status = status;
    for (watcher *w = h->watchers.next; w != &h->watchers; w = w->next) {
        if (strcmp(w->service, service) == 0) {
            send_status(w->call, (int)status);
        }
    }
    return PW_OK;
}

pw_health_status pw_health_get(const pw_health *h, const char *service)
{
    health_entry *e = health_find((pw_health *)(uintptr_t)h, service);
    return e != NULL ? e->status : PW_HEALTH_UNKNOWN;
}

static void check(pw_call *call, const Grpc__Health__V1__HealthCheckRequest *req, void *ud)
{
    pw_health *h = ud;
    health_entry *e = health_find(h, req->service);
    if (e == NULL) {
        pw_call_finish(call, PW_NOT_FOUND, "unknown service \"%s\"", req->service);
        return;
    }
    Grpc__Health__V1__HealthCheckResponse r = GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__INIT;
    r.status = (Grpc__Health__V1__HealthCheckResponse__ServingStatus)e->status;
    grpc_health_v1_health_check_reply(call, &r);
}

static void watch_cancel(pw_call *call, pw_status why, void *ud)
{
    watcher *w = ud;
    w->prev->next = w->next;
    w->next->prev = w->prev;
    pw_call_finish(call, why, NULL);
}

static const pw_call_ops watch_ops = {.on_cancel = watch_cancel};

static void watch(pw_call *call, const Grpc__Health__V1__HealthCheckRequest *req, void *ud)
{
    pw_health *h = ud;
    watcher *w = pw_call_alloc(call, sizeof(*w) + strlen(req->service) + 1);
    if (w == NULL) {
        pw_call_finish(call, PW_RESOURCE_EXHAUSTED, "out of memory");
        return;
    }
    w->call = call;
    w->service = (char *)(w + 1);
    strcpy(w->service, req->service);
    w->next = h->watchers.next;
    w->prev = &h->watchers;
    h->watchers.next->prev = w;
    h->watchers.next = w;
    pw_call_set_ops(call, &watch_ops, w);
    health_entry *e = health_find(h, req->service);
    /* Watch reports SERVICE_UNKNOWN (3) for services it does not know yet. */
    send_status(
        call, e != NULL ? (int)e->status
                        : GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVICE_UNKNOWN);
}

static void health_hook(pw_server *server, pw_server_event event, void *ud)
{
    (void)server;
    pw_health *h = ud;
    if (event == PW_SERVER_SHUTTING_DOWN) {
        for (size_t i = 0; i < h->count; i++) {
            pw_health_set(h, h->entries[i].service, PW_HEALTH_NOT_SERVING);
        }
        return;
    }
    for (size_t i = 0; i < h->count; i++) {
        pw_free(h->entries[i].service);
    }
    pw_free(h->entries);
    pw_free(h);
}

static const grpc_health_v1_health_handlers handlers = {.check = check, .watch = watch};

pw_status pw_health_enable(pw_server *server, pw_health **out)
{
    if (out != NULL) {
        *out = NULL;
    }
    pw_health *h = pw_calloc(1, sizeof(*h));
    if (h == NULL) {
        return PW_ERRNO(ENOMEM);
    }
    h->watchers.next = h->watchers.prev = &h->watchers;
    pw_status rv = pw_health_set(h, "", PW_HEALTH_SERVING);
    if (rv == PW_OK) {
        rv = pw_server_add_hook(server, health_hook, h);
    }
    if (rv != PW_OK) {
        pw_free(h->entries);
        pw_free(h);
        return rv;
    }
    /* From here the server's hook frees h, whatever registering does. */
    rv = grpc_health_v1_health_register(server, &handlers, h);
    if (rv == PW_OK && out != NULL) {
        *out = h;
    }
    return rv;
}
