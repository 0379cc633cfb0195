/*
 * errors.c: google.rpc.Status with standard details, packed as
 * google.protobuf.Any (type.googleapis.com/<full name>) into the
 * grpc-status-details-bin trailer, and read back.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <paywire/alloc.h>
#include <paywire/errors.h>
#include "google/rpc/error_details.pb-c.h"
#include "google/rpc/status.pb-c.h"

#define DETAILS_KEY "grpc-status-details-bin"
#define TYPE_PREFIX "type.googleapis.com/"

static pw_status set_str(char **dst, const char *src)
{
    pw_free(*dst);
    *dst = src ? pw_strdup(src) : NULL;
    return src == NULL || *dst != NULL ? PW_OK : PW_ERRNO(ENOMEM);
}

pw_status pw_error_set_info(pw_error_details *d, const char *reason, const char *domain)
{
    pw_status rv = set_str(&d->reason, reason);
    return rv == PW_OK ? set_str(&d->domain, domain) : rv;
}

pw_status pw_error_add_violation(pw_error_details *d, const char *field, const char *description)
{
    pw_field_violation *v = pw_realloc(d->violations, (d->violation_count + 1) * sizeof(*v));
    if (v == NULL) {
        return PW_ERRNO(ENOMEM);
    }
    d->violations = v;
    v = &d->violations[d->violation_count];
    v->field = pw_strdup(field ? field : "");
    v->description = pw_strdup(description ? description : "");
    if (v->field == NULL || v->description == NULL) {
        pw_free(v->field);
        pw_free(v->description);
        return PW_ERRNO(ENOMEM);
    }
    d->violation_count++;
    return PW_OK;
}

pw_status pw_error_set_resource(pw_error_details *d, const char *type, const char *name,
                                const char *owner, const char *description)
{
    pw_status rv = set_str(&d->resource_type, type);
    rv = rv == PW_OK ? set_str(&d->resource_name, name) : rv;
    rv = rv == PW_OK ? set_str(&d->resource_owner, owner) : rv;
    return rv == PW_OK ? set_str(&d->resource_description, description) : rv;
}

void pw_error_details_clear(pw_error_details *d)
{
    for (size_t i = 0; i < d->violation_count; i++) {
        pw_free(d->violations[i].field);
        pw_free(d->violations[i].description);
    }
    pw_free(d->violations);
    pw_free(d->message);
    pw_free(d->reason);
    pw_free(d->domain);
    pw_free(d->resource_type);
    pw_free(d->resource_name);
    pw_free(d->resource_owner);
    pw_free(d->resource_description);
    *d = (pw_error_details){0};
}

/* ---- writing ---- */

typedef struct packer {
    Google__Protobuf__Any anys[4];
    Google__Protobuf__Any *ptrs[4];
    uint8_t *blobs[4];
    char urls[4][96];
    size_t n;
} packer;

static void pack_any(packer *p, const ProtobufCMessage *m)
{
    size_t len = protobuf_c_message_get_packed_size(m);
    uint8_t *buf = pw_malloc(len ? len : 1);
    if (buf == NULL) {
        return;
    }
    protobuf_c_message_pack(m, buf);
    google__protobuf__any__init(&p->anys[p->n]);
    snprintf(p->urls[p->n], sizeof(p->urls[0]), TYPE_PREFIX "%s", m->descriptor->name);
    p->anys[p->n].type_url = p->urls[p->n];
    p->anys[p->n].value.data = buf;
    p->anys[p->n].value.len = len;
    p->blobs[p->n] = buf;
    p->ptrs[p->n] = &p->anys[p->n];
    p->n++;
}

static void pack_details(packer *p, const pw_error_details *d)
{
    if (d->reason != NULL) {
        Google__Rpc__ErrorInfo info = GOOGLE__RPC__ERROR_INFO__INIT;
        info.reason = d->reason;
        info.domain = d->domain ? d->domain : (char *)"";
        pack_any(p, &info.base);
    }
    if (d->violation_count > 0) {
        Google__Rpc__BadRequest br = GOOGLE__RPC__BAD_REQUEST__INIT;
        Google__Rpc__BadRequest__FieldViolation fv[32];
        Google__Rpc__BadRequest__FieldViolation *fvp[32];
        size_t n = d->violation_count < 32 ? d->violation_count : 32;
        for (size_t i = 0; i < n; i++) {
            google__rpc__bad_request__field_violation__init(&fv[i]);
            fv[i].field = d->violations[i].field;
            fv[i].description = d->violations[i].description;
            fvp[i] = &fv[i];
        }
        br.n_field_violations = n;
        br.field_violations = fvp;
        pack_any(p, &br.base);
    }
    if (d->retry_delay_ms > 0) {
        Google__Rpc__RetryInfo ri = GOOGLE__RPC__RETRY_INFO__INIT;
        Google__Protobuf__Duration dur = GOOGLE__PROTOBUF__DURATION__INIT;
        dur.seconds = d->retry_delay_ms / 1000;
        dur.nanos = (int32_t)(d->retry_delay_ms % 1000) * 1000000;
        ri.retry_delay = &dur;
        pack_any(p, &ri.base);
    }
    if (d->resource_type != NULL) {
        Google__Rpc__ResourceInfo res = GOOGLE__RPC__RESOURCE_INFO__INIT;
        res.resource_type = d->resource_type;
        res.resource_name = d->resource_name ? d->resource_name : (char *)"";
        res.owner = d->resource_owner ? d->resource_owner : (char *)"";
        res.description = d->resource_description ? d->resource_description : (char *)"";
        pack_any(p, &res.base);
    }
}

pw_status pw_call_attach_details(pw_call *call, pw_status code, const char *message,
                                 const pw_error_details *d)
{
    packer p = {.n = 0};
    pack_details(&p, d);
    Google__Rpc__Status st = GOOGLE__RPC__STATUS__INIT;
    st.code = pw_status_to_wire(code);
    st.message = (char *)(uintptr_t)(message ? message : "");
    st.n_details = p.n;
    st.details = p.ptrs;
    size_t len = protobuf_c_message_get_packed_size(&st.base);
    uint8_t *buf = pw_malloc(len ? len : 1);
    pw_status rv = PW_ERRNO(ENOMEM);
    if (buf != NULL) {
        protobuf_c_message_pack(&st.base, buf);
        rv = pw_call_add_trailing_metadata(call, DETAILS_KEY, buf, len);
        pw_free(buf);
    }
    for (size_t i = 0; i < p.n; i++) {
        pw_free(p.blobs[i]);
    }
    return rv;
}

void pw_call_finish_details(pw_call *call, pw_status code, const pw_error_details *d,
                            const char *fmt, ...)
{
    char msg[512] = "";
    if (fmt != NULL) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
    }
    pw_call_attach_details(call, code, msg, d);
    pw_call_finish(call, code, "%s", msg);
}

/* ---- reading ---- */

static const ProtobufCMessage *unpack_any(const Google__Protobuf__Any *any,
                                          const ProtobufCMessageDescriptor *desc)
{
    size_t plen = strlen(TYPE_PREFIX);
    if (strncmp(any->type_url, TYPE_PREFIX, plen) != 0 ||
        strcmp(any->type_url + plen, desc->name) != 0) {
        return NULL;
    }
    return protobuf_c_message_unpack(desc, pw_protobuf_allocator(), any->value.len,
                                     any->value.data);
}

pw_status pw_error_details_read(const pw_metadata *trailers, pw_error_details *out)
{
    pw_error_details_clear(out);
    out->retry_delay_ms = -1;
    const pw_metadata_entry *e = pw_metadata_get(trailers, DETAILS_KEY);
    if (e == NULL) {
        return PW_NOT_FOUND;
    }
    Google__Rpc__Status *st =
        google__rpc__status__unpack(pw_protobuf_allocator(), e->value_len, e->value);
    if (st == NULL) {
        return PW_INTERNAL;
    }
    out->code = st->code;
    out->message = pw_strdup(st->message);
    for (size_t i = 0; i < st->n_details; i++) {
        const Google__Protobuf__Any *any = st->details[i];
        const ProtobufCMessage *m;
        if ((m = unpack_any(any, &google__rpc__error_info__descriptor)) != NULL) {
            const Google__Rpc__ErrorInfo *info = (const void *)m;
            pw_error_set_info(out, info->reason, info->domain);
        } else if ((m = unpack_any(any, &google__rpc__bad_request__descriptor)) != NULL) {
            const Google__Rpc__BadRequest *br = (const void *)m;
            for (size_t j = 0; j < br->n_field_violations; j++) {
                pw_error_add_violation(out, br->field_violations[j]->field,
                                       br->field_violations[j]->description);
            }
        } else if ((m = unpack_any(any, &google__rpc__retry_info__descriptor)) != NULL) {
            const Google__Rpc__RetryInfo *ri = (const void *)m;
            if (ri->retry_delay != NULL) {
                out->retry_delay_ms =
                    ri->retry_delay->seconds * 1000 + ri->retry_delay->nanos / 1000000;
            }
        } else if ((m = unpack_any(any, &google__rpc__resource_info__descriptor)) != NULL) {
            const Google__Rpc__ResourceInfo *res = (const void *)m;
            pw_error_set_resource(out, res->resource_type, res->resource_name, res->owner,
                                  res->description);
        }
        if (m != NULL) {
            pw_protobuf_free((ProtobufCMessage *)(uintptr_t)m);
        }
    }
    google__rpc__status__free_unpacked(st, pw_protobuf_allocator());
    return PW_OK;
}
