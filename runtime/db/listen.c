/*
 * listen.c: LISTEN on the loop (pw_db_listener, db.h). One libpq connection
 * of its own, outside any pool: connected with PQconnectStartParams and
 * PQconnectPoll under a uv_poll_t, then `LISTEN "<channel>"` sent without
 * blocking; from then on every readable socket is PQconsumeInput and each
 * PQnotifies entry becomes a callback. A lost connection is reconnected
 * after a pause, and every time the LISTEN is in place again the callback
 * runs with a NULL payload: notifications sent meanwhile are lost (NOTIFY
 * is not queued for absent listeners), so the owner re-reads what it
 * watches. Closing stops the callbacks at once and frees the listener once
 * its handles are closed.
 */
#include <stdio.h>
#include <string.h>
#include <libpq-fe.h>
#include <paywire/alloc.h>
#include <paywire/log.h>
#include "internal.h"

enum { LISTEN_RETRY_MS = 500 };

struct pw_db_listener {
    uv_loop_t *loop;
    char *conninfo;
    char *channel;
    pw_db_notify_cb cb;
    void *user_data;
    PGconn *pg;
    uv_poll_t *poll;
    int fd;
    int events;
    uv_timer_t retry;
    /* 0 connecting, 1 LISTEN sent, 2 listening. */
    int phase;
    int closing;
    pw_db_listener_close_cb close_cb;
    void *close_ud;
    /* Open handles (the retry timer, a poll); freed at 0 once closing. */
    int handles;
};

static void on_poll(uv_poll_t *h, int status, int events);
static void reconnect_later(pw_db_listener *l, const char *why);

static void handle_closed(uv_handle_t *h)
{
    pw_db_listener *l = h->data;
    if (h != (uv_handle_t *)&l->retry) {
        pw_free(h);
    }
    if (--l->handles == 0 && l->closing) {
        if (l->close_cb != NULL) {
            l->close_cb(l, l->close_ud);
        }
        pw_free(l->conninfo);
        pw_free(l->channel);
        pw_free(l);
    }
}

static void drop_poll(pw_db_listener *l)
{
    if (l->poll != NULL) {
        uv_close((uv_handle_t *)l->poll, handle_closed);
        l->poll = NULL;
    }
}

/* Watches the connection's socket (libpq may move to another while connecting). */
static void watch(pw_db_listener *l, int events)
{
    int fd = PQsocket(l->pg);
    if (l->poll != NULL && fd != l->fd) {
        drop_poll(l);
    }
    if (fd < 0) {
        return;
    }
    if (l->poll == NULL) {
        l->poll = pw_malloc(sizeof(*l->poll));
        if (l->poll == NULL || uv_poll_init_socket(l->loop, l->poll, fd) != 0) {
            pw_free(l->poll);
            l->poll = NULL;
            return;
        }
        l->poll->data = l;
        l->handles++;
        l->fd = fd;
        l->events = 0;
    }
    if (events != l->events) {
        l->events = events;
        uv_poll_start(l->poll, events, on_poll);
    }
}

static void send_listen(pw_db_listener *l)
{
    char *quoted = PQescapeIdentifier(l->pg, l->channel, strlen(l->channel));
    char sql[200];
    snprintf(sql, sizeof(sql), "LISTEN %s", quoted != NULL ? quoted : "\"\"");
    PQfreemem(quoted);
    if (PQsetnonblocking(l->pg, 1) != 0 || PQsendQuery(l->pg, sql) != 1) {
        reconnect_later(l, PQerrorMessage(l->pg));
        return;
    }
    l->phase = 1;
    watch(l, PQflush(l->pg) == 1 ? UV_READABLE | UV_WRITABLE : UV_READABLE);
}

static void connect_step(pw_db_listener *l)
{
    switch (PQconnectPoll(l->pg)) {
    case PGRES_POLLING_READING:
        watch(l, UV_READABLE);
        return;
    case PGRES_POLLING_WRITING:
        watch(l, UV_WRITABLE);
        return;
    case PGRES_POLLING_OK:
        send_listen(l);
        return;
    default:
        reconnect_later(l, PQerrorMessage(l->pg));
    }
}

/* Results of LISTEN (once), then notifications; 0 when the connection broke. */
static int consume(pw_db_listener *l)
{
    if (PQconsumeInput(l->pg) != 1) {
        return 0;
    }
    while (!PQisBusy(l->pg)) {
        PGresult *res = PQgetResult(l->pg);
        if (res == NULL) {
            break;
        }
        int ok = PQresultStatus(res) == PGRES_COMMAND_OK;
        PQclear(res);
        if (!ok) {
            return 0;
        }
        if (l->phase == 1) {
            l->phase = 2;
            l->cb(l, l->channel, NULL, l->user_data); /* listening: re-read what is watched */
            if (l->closing) {
                return 1;
            }
        }
    }
    PGnotify *n;
    while (!l->closing && (n = PQnotifies(l->pg)) != NULL) {
        l->cb(l, n->relname, n->extra, l->user_data);
        PQfreemem(n);
    }
    return 1;
}

static void on_poll(uv_poll_t *h, int status, int events)
{
    pw_db_listener *l = h->data;
    if (l->closing) {
        return;
    }
    if (status < 0) {
        reconnect_later(l, uv_strerror(status));
        return;
    }
    if (l->phase == 0) {
        connect_step(l);
        return;
    }
    if ((events & UV_WRITABLE) && PQflush(l->pg) == 0) {
        watch(l, UV_READABLE);
    }
    if ((events & UV_READABLE) && !consume(l) && !l->closing) {
        reconnect_later(l, PQerrorMessage(l->pg));
    }
}

static void start(pw_db_listener *l)
{
    const char *keys[] = {"dbname", "application_name", NULL};
    const char *values[] = {l->conninfo, "paywire-listen", NULL};
    l->phase = 0;
    l->fd = -1;
    l->pg = PQconnectStartParams(keys, values, 1);
    if (l->pg == NULL || PQstatus(l->pg) == CONNECTION_BAD) {
        reconnect_later(l, l->pg != NULL ? PQerrorMessage(l->pg) : "out of memory");
        return;
    }
    connect_step(l);
}

static void retry_fired(uv_timer_t *t)
{
    start(t->data);
}

static void reconnect_later(pw_db_listener *l, const char *why)
{
    PW_LOG(PW_LOG_WARNING, "db", "LISTEN %s: connection lost or refused (%.200s); again in %d ms",
           l->channel, why, LISTEN_RETRY_MS);
    drop_poll(l);
    if (l->pg != NULL) {
        PQfinish(l->pg);
        l->pg = NULL;
    }
    uv_timer_start(&l->retry, retry_fired, LISTEN_RETRY_MS, 0);
}

pw_status pw_db_listener_new(pw_db_listener **out, uv_loop_t *loop, const char *conninfo,
                             const char *channel, pw_db_notify_cb cb, void *user_data)
{
    *out = NULL;
    if (conninfo == NULL || channel == NULL || channel[0] == '\0' || strlen(channel) > 63 ||
        cb == NULL) {
        return PW_INVALID_ARGUMENT;
    }
    pw_db_listener *l = pw_calloc(1, sizeof(*l));
    if (l == NULL) {
        return PW_ERRNO(ENOMEM);
    }
    l->loop = loop;
    l->conninfo = pw_strdup(conninfo);
    l->channel = pw_strdup(channel);
    if (l->conninfo == NULL || l->channel == NULL) {
        pw_free(l->conninfo);
        pw_free(l->channel);
        pw_free(l);
        return PW_ERRNO(ENOMEM);
    }
    l->cb = cb;
    l->user_data = user_data;
    uv_timer_init(loop, &l->retry);
    l->retry.data = l;
    l->handles = 1;
    /* The first connect starts on the next turn, so cb never runs inside this call. */
    uv_timer_start(&l->retry, retry_fired, 0, 0);
    *out = l;
    return PW_OK;
}

void pw_db_listener_close(pw_db_listener *l, pw_db_listener_close_cb close_cb, void *user_data)
{
    if (l == NULL || l->closing) {
        return;
    }
    l->closing = 1;
    l->close_cb = close_cb;
    l->close_ud = user_data;
    drop_poll(l);
    if (l->pg != NULL) {
        PQfinish(l->pg);
        l->pg = NULL;
    }
    uv_close((uv_handle_t *)&l->retry, handle_closed);
}
