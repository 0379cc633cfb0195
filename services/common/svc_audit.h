#ifndef PAYWIRE_SVC_AUDIT_H
#define PAYWIRE_SVC_AUDIT_H

/*
 * A service's audit outbox published to compliance's AuditService.AppendEvent
 * (docs/design/services.md): the rows of its audit_outbox table (actor,
 * action, subject_id, detail jsonb, and svc_outbox's delivery columns),
 * written in the transaction of each audited change, delivered at least once
 * and idempotent on the row ("<source>/audit/<id>"), surviving compliance
 * being down (svc_outbox). Runs on the service's worker 0 (start_jobs). Off
 * when the audit_target setting is not set: a warning says the events wait in
 * the table.
 */
#include "svc_main.h"

/** The setting a service that publishes its audit outbox declares among its own. */
#define SVC_AUDIT_SETTING                               \
    {                                                   \
        "audit_target", SVC_SETTING_TEXT, NULL, 0, 0, 0 \
    }

typedef struct svc_audit svc_audit;

/**
 * Starts publishing app's audit_outbox on loop to audit_target, with the TLS
 * identity of cfg (compliance knows the service by its certificate), as
 * events of source ("merchant", "finance"; borrowed: a static string).
 * *out is NULL when audit_target is not set (PW_OK) or on failure. Returns
 * PW_OK, or a failure of the channel or the outbox (svc_outbox_start).
 */
pw_status svc_audit_start(svc_audit **out, svc_app *app, uv_loop_t *loop, const svc_config *cfg,
                          const char *source);
/** Stops publishing (calls in flight end CANCELLED: their rows are retried later); NULL is a
 * no-op. Call before the pool closes (stop_jobs). */
void svc_audit_stop(svc_audit *a);

#endif
