/* upload.c: a list version through UploadSanctionsList (see ofac.h). */
#include <stdio.h>
#include <string.h>
#include "ofac.h"
#include "paywire/compliance/v1/screening.pw.h"

#define P(x) Paywire__Compliance__V1__##x

pw_status ofac_upload(pw_channel *ch, const char *list, const char *version,
                      P(SanctionsEntry) *const *entries, size_t n, size_t chunk, size_t stop_after,
                      int *active, char *msg, size_t msg_len)
{
    msg[0] = '\0';
    if (chunk == 0 || chunk > 1000) {
        chunk = 1000;
    }
    pw_call_options o = {.timeout_ms = 120000, .wait_for_ready = 1};
    pw_stream *s = NULL;
    pw_status rv =
        paywire_compliance_v1_screening_service_upload_sanctions_list_start_blocking(ch, &o, &s);
    if (rv != PW_OK) {
        snprintf(msg, msg_len, "cannot start the upload: %s", pw_status_str(rv));
        return rv;
    }
    size_t sent = 0;
    do {
        P(UploadSanctionsListRequest)
        req = PAYWIRE__COMPLIANCE__V1__UPLOAD_SANCTIONS_LIST_REQUEST__INIT;
        if (sent == 0) {
            req.list = (char *)list;
            req.version = (char *)version;
            req.expected_entries = (int64_t)n;
        }
        size_t k = n - sent < chunk ? n - sent : chunk;
        if (stop_after > 0 && sent + k > stop_after) {
            k = stop_after - sent;
        }
        req.entries = (P(SanctionsEntry) **)entries + sent;
        req.n_entries = k;
        rv = paywire_compliance_v1_screening_service_upload_sanctions_list_stream_send(s, &req);
        sent += k;
        if (stop_after > 0 && sent >= stop_after) {
            pw_stream_cancel(s);
            break;
        }
    } while (rv == PW_OK && sent < n);
    if (rv == PW_OK && !(stop_after > 0 && sent >= stop_after)) {
        rv = pw_stream_close_send(s);
    }
    P(UploadSanctionsListResponse) *resp = NULL;
    if (rv == PW_OK) {
        rv = paywire_compliance_v1_screening_service_upload_sanctions_list_stream_recv(s, &resp);
    }
    const char *m = NULL;
    pw_status st = pw_stream_finish(s, &m, NULL);
    if (st != PW_OK) {
        rv = st;
    }
    snprintf(msg, msg_len, "%s", m ? m : "");
    if (rv == PW_OK && resp != NULL && resp->list != NULL && active != NULL) {
        *active = resp->list->active;
    }
    if (rv == PW_OK && resp == NULL) {
        rv = PW_INTERNAL;
        snprintf(msg, msg_len, "the server sent no answer");
    }
    if (resp != NULL) {
        pw_protobuf_free(&resp->base);
    }
    pw_stream_free(s);
    return rv;
}
