/*
 * lists.c: versioned sanctions lists (docs/design/compliance.md, Sanctions
 * screening). UploadSanctionsList is client streaming: its messages are kept
 * in call memory as they arrive, and only when the client half-closes does a
 * fiber check the whole upload (names, entry ids, the expected count) and
 * store it and make it active in one transaction, with its audit event. A
 * stream that is cancelled, fails to decode, or ends short of the count
 * applies nothing, so the active version stays as it was.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "compliance.h"
#include "jcs.h"

#define P(x)              Paywire__Compliance__V1__##x
#define MAX_CHUNK_ENTRIES 1000
#define MAX_ENTRIES       500000
#define MAX_VIOLATIONS    10

static const pw_db_stmt lock_list = {
    "lists_lock",
    "SELECT pg_advisory_xact_lock(hashtext('sanctions_list:' || $1))",
    1,
    {PW_DB_TEXT}};
static const pw_db_stmt find_version = {
    "lists_find",
    "SELECT list, version, entries, active, load_time, body_sha256 FROM sanctions_lists"
    " WHERE list = $1 AND version = $2",
    2,
    {PW_DB_TEXT, PW_DB_TEXT}};
static const pw_db_stmt insert_version = {
    "lists_insert",
    "INSERT INTO sanctions_lists (list, version, entries, body, body_sha256)"
    " VALUES ($1, $2, $3, $4, $5)",
    5,
    {PW_DB_TEXT, PW_DB_TEXT, PW_DB_INT8, PW_DB_BYTEA, PW_DB_BYTEA}};
static const pw_db_stmt deactivate = {
    "lists_deactivate",
    "UPDATE sanctions_lists SET active = false WHERE list = $1 AND active",
    1,
    {PW_DB_TEXT}};
static const pw_db_stmt activate = {
    "lists_activate",
    "UPDATE sanctions_lists SET active = true WHERE list = $1 AND version = $2"
    " RETURNING list, version, entries, active, load_time",
    2,
    {PW_DB_TEXT, PW_DB_TEXT}};
static const pw_db_stmt all_lists = {"lists_all",
                                     "SELECT list, version, entries, active, load_time"
                                     " FROM sanctions_lists ORDER BY list, load_time, version",
                                     0,
                                     {0}};

static P(SanctionsList) * list_from_row(svc_row row)
{
    P(SanctionsList) *l = svc_alloc(row.r, sizeof(*l));
    paywire__compliance__v1__sanctions_list__init(l);
    l->list = svc_text(row, "list");
    l->version = svc_text(row, "version");
    l->entries = svc_int64(row, "entries");
    l->active = svc_bool(row, "active");
    l->load_time = svc_time(row, "load_time");
    return l;
}

/* ---- the upload, once the stream has ended ---- */

typedef struct upload_args {
    const P(UploadSanctionsListRequest) * whole;
    uint8_t *body;
    size_t body_len;
    uint8_t sha[32];
} upload_args;

static void upload_tx(svc_req *r, const void *arg)
{
    const upload_args *a = arg;
    const P(UploadSanctionsListRequest) *w = a->whole;
    pw_db_param lv[] = {pw_db_text(w->list), pw_db_text(w->version)};
    svc_tx_query(r, &lock_list, lv, 1);
    const pw_db_result *found = svc_tx_query(r, &find_version, lv, 2);
    P(UploadSanctionsListResponse)
    resp = PAYWIRE__COMPLIANCE__V1__UPLOAD_SANCTIONS_LIST_RESPONSE__INIT;
    if (pw_db_rows(found) == 1) {
        /* (list, version) is the key: the same content again changes nothing. */
        svc_row row = svc_row_at(r, found, 0);
        pw_slice sha = svc_bytes(row, "body_sha256");
        if (sha.len != 32 || memcmp(sha.base, a->sha, 32) != 0) {
            svc_abort(r, PW_FAILED_PRECONDITION, "LIST_VERSION_EXISTS",
                      "%s version %s exists with other entries; upload a new version", w->list,
                      w->version);
        }
        resp.list = list_from_row(row);
        svc_commit(r, &resp.base, NULL);
        return;
    }
    pw_db_param ins[] = {pw_db_text(w->list), pw_db_text(w->version),
                         pw_db_int8((int64_t)w->n_entries), pw_db_bytea(a->body, a->body_len),
                         pw_db_bytea(a->sha, 32)};
    svc_tx_pipe(r, &insert_version, ins, 5);
    svc_tx_pipe(r, &deactivate, lv, 1);
    svc_row row = svc_row_at(r, svc_tx_query(r, &activate, lv, 2), 0);
    resp.list = list_from_row(row);
    char subject[160], detail[256], key[200];
    snprintf(subject, sizeof(subject), "%s@%s", w->list, w->version);
    snprintf(key, sizeof(key), "sanctions_list.activated:%s", subject);
    char sha_hex[65];
    jcs_hex(a->sha, sha_hex);
    snprintf(detail, sizeof(detail), "{\"entries\":%zu,\"sha256\":\"%s\"}", w->n_entries, sha_hex);
    audit_entry e = {r->caller.identity, "sanctions_list.activated", subject, "compliance", detail};
    audit_record(r, key, &e);
    svc_commit(r, &resp.base, NULL);
}

static int name_ok(const char *s, size_t max, int dots)
{
    size_t n = s ? strlen(s) : 0;
    if (n == 0 || n > max) {
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        int ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_' ||
                 (dots && (c == '.' || (c >= 'A' && c <= 'Z')));
        if (!ok || (i == 0 && (c == '-' || c == '_' || c == '.'))) {
            return 0;
        }
    }
    return 1;
}

static void entry_violation(svc_req *r, size_t i, const char *field, const char *what)
{
    if (r->details.violation_count < MAX_VIOLATIONS) {
        char f[64];
        snprintf(f, sizeof(f), "entries[%zu].%s", i, field);
        svc_violation(r, svc_strdup(r, f), what);
    }
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void check_entries(svc_req *r, const P(UploadSanctionsListRequest) * w)
{
    char **ids = svc_alloc(r, sizeof(*ids) * (w->n_entries ? w->n_entries : 1));
    for (size_t i = 0; i < w->n_entries; i++) {
        const P(SanctionsEntry) *e = w->entries[i];
        if (!svc_text_ok(e->entry_id, 64)) {
            entry_violation(r, i, "entry_id", "required: 1 to 64 characters");
        }
        ids[i] = e->entry_id;
        if (e->n_names == 0) {
            entry_violation(r, i, "names", "at least one name");
        }
        for (size_t k = 0; k < e->n_names; k++) {
            if (!svc_text_ok(e->names[k], 512) || !jcs_utf8_ok(e->names[k], strlen(e->names[k]))) {
                entry_violation(r, i, "names", "1 to 512 characters of UTF-8 text");
            }
        }
        for (size_t k = 0; k < e->n_countries; k++) {
            if (!svc_country_ok(e->countries[k])) {
                entry_violation(r, i, "countries", "ISO 3166-1 alpha-2 codes");
            }
        }
        for (size_t k = 0; k < e->n_digital_currency_addresses; k++) {
            const P(DigitalCurrencyAddress) *d = e->digital_currency_addresses[k];
            if (!svc_text_ok(d->currency, 10) || !svc_text_ok(d->address, 128)) {
                entry_violation(r, i, "digital_currency_addresses",
                                "a currency code and an address");
            }
        }
    }
    qsort(ids, w->n_entries, sizeof(*ids), cmp_str);
    for (size_t i = 1; i < w->n_entries; i++) {
        if (strcmp(ids[i - 1], ids[i]) == 0) {
            char what[120];
            snprintf(what, sizeof(what), "entry ids are unique; \"%.64s\" repeats", ids[i]);
            svc_violation(r, "entries", svc_strdup(r, what));
            break;
        }
    }
}

static void upload_body(svc_req *r, const void *request)
{
    const P(UploadSanctionsListRequest) *w = request;
    if (!name_ok(w->list, 64, 0)) {
        svc_violation(r, "list",
                      "required in the first message: lower-case letters, digits, - and _");
    }
    if (!name_ok(w->version, 64, 1)) {
        svc_violation(r, "version", "required in the first message: letters, digits, ., - and _");
    }
    if (w->expected_entries < 0 || w->expected_entries > MAX_ENTRIES) {
        svc_violation(r, "expected_entries", "0 to 500000, in the first message");
    }
    check_entries(r, w);
    svc_check(r);
    svc_authenticate(r, NULL);
    if ((int64_t)w->n_entries != w->expected_entries) {
        svc_fail_reason(r, PW_ABORTED, "UPLOAD_INCOMPLETE",
                        "%zu entries arrived, %lld were announced: nothing was applied",
                        w->n_entries, (long long)w->expected_entries);
    }
    upload_args a = {.whole = w};
    a.body_len = protobuf_c_message_get_packed_size(&w->base);
    a.body = svc_alloc(r, a.body_len);
    protobuf_c_message_pack(&w->base, a.body);
    svc_sha256(a.body, a.body_len, a.sha);
    svc_transaction(r, upload_tx, &a);
}

/* ---- the stream ---- */

typedef struct upload {
    svc_app *app;
    P(UploadSanctionsListRequest) * *chunks;
    size_t n, cap;
    size_t entries;
    int ended;   /* the call was answered (or is being, by the fiber) */
    int serving; /* the fiber owns the call */
    P(UploadSanctionsListRequest) whole;
} upload;

static void upload_refuse(pw_call *call, upload *u, pw_status code, const char *msg)
{
    u->ended = 1;
    pw_call_abort(call, code, msg); /* on_cancel follows, and finishes */
}

static void upload_message(pw_call *call, pw_slice msg, void *ud)
{
    upload *u = ud;
    if (u->ended) {
        return;
    }
    ProtobufCMessage *m = NULL;
    if (pw_call_unpack(call, msg,
                       &paywire__compliance__v1__upload_sanctions_list_request__descriptor,
                       &m) != PW_OK) {
        upload_refuse(call, u, PW_INTERNAL, "an upload message cannot be decoded");
        return;
    }
    P(UploadSanctionsListRequest) *req = (P(UploadSanctionsListRequest) *)m;
    if (req->n_entries > MAX_CHUNK_ENTRIES) {
        upload_refuse(call, u, PW_INVALID_ARGUMENT, "at most 1000 entries per message");
        return;
    }
    if (u->entries + req->n_entries > MAX_ENTRIES) {
        upload_refuse(call, u, PW_INVALID_ARGUMENT, "at most 500000 entries per list version");
        return;
    }
    if (u->n == u->cap) {
        size_t cap = u->cap ? u->cap * 2 : 16;
        P(UploadSanctionsListRequest) **g = pw_call_alloc(call, sizeof(*g) * cap);
        if (g == NULL) {
            upload_refuse(call, u, PW_RESOURCE_EXHAUSTED, "out of memory");
            return;
        }
        if (u->n > 0) {
            memcpy(g, u->chunks, sizeof(*g) * u->n);
        }
        u->chunks = g;
        u->cap = cap;
    }
    u->chunks[u->n++] = req;
    u->entries += req->n_entries;
}

static void upload_half_close(pw_call *call, void *ud)
{
    upload *u = ud;
    if (u->ended) {
        return;
    }
    if (u->n == 0) {
        u->ended = 1;
        pw_call_finish(call, PW_INVALID_ARGUMENT,
                       "an upload starts with a message naming list, version and expected_entries");
        return;
    }
    P(UploadSanctionsListRequest) *first = u->chunks[0];
    paywire__compliance__v1__upload_sanctions_list_request__init(&u->whole);
    u->whole.list = first->list;
    u->whole.version = first->version;
    u->whole.expected_entries = first->expected_entries;
    u->whole.n_entries = u->entries;
    u->whole.entries =
        pw_call_alloc(call, sizeof(*u->whole.entries) * (u->entries ? u->entries : 1));
    if (u->whole.entries == NULL) {
        u->ended = 1;
        pw_call_finish(call, PW_RESOURCE_EXHAUSTED, "out of memory");
        return;
    }
    size_t k = 0;
    for (size_t i = 0; i < u->n; i++) {
        for (size_t j = 0; j < u->chunks[i]->n_entries; j++) {
            u->whole.entries[k++] = u->chunks[i]->entries[j];
        }
    }
    u->ended = u->serving = 1;
    svc_serve(call, u->app, &u->whole.base, upload_body);
}

static void upload_cancel(pw_call *call, pw_status why, void *ud)
{
    upload *u = ud;
    if (u->serving) {
        return; /* the fiber's database wait fails, and the fiber finishes the call */
    }
    u->ended = u->serving = 1; /* finished once */
    pw_call_finish(call, why, "the upload was interrupted: nothing was applied");
}

static const pw_call_ops upload_ops = {
    .on_message = upload_message,
    .on_half_close = upload_half_close,
    .on_cancel = upload_cancel,
};

static void upload_sanctions_list_h(pw_call *call, void *app)
{
    upload *u = pw_call_alloc(call, sizeof(*u));
    if (u == NULL) {
        pw_call_finish(call, PW_RESOURCE_EXHAUSTED, "out of memory");
        return;
    }
    memset(u, 0, sizeof(*u));
    u->app = app;
    pw_call_set_ops(call, &upload_ops, u);
}

SVC_HANDLER(list_sanctions_lists, P(ListSanctionsListsRequest))
{
    (void)req;
    svc_authenticate(r, NULL);
    const pw_db_result *res = svc_query(r, &all_lists, NULL, 0);
    P(ListSanctionsListsResponse)
    resp = PAYWIRE__COMPLIANCE__V1__LIST_SANCTIONS_LISTS_RESPONSE__INIT;
    int n = pw_db_rows(res);
    resp.lists = svc_alloc(r, sizeof(*resp.lists) * (size_t)(n ? n : 1));
    for (int i = 0; i < n; i++) {
        resp.lists[i] = list_from_row(svc_row_at(r, res, i));
    }
    resp.n_lists = (size_t)n;
    svc_reply(r, &resp.base);
}

void lists_handlers_init(paywire_compliance_v1_screening_service_handlers *h)
{
    h->upload_sanctions_list = upload_sanctions_list_h;
    h->list_sanctions_lists = list_sanctions_lists_h;
}
