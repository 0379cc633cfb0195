#ifndef PAYWIRE_COMPLIANCE_H
#define PAYWIRE_COMPLIANCE_H

/* The compliance service (docs/design/compliance.md): what its files share. */
#include "svc_main.h"
#include "paywire/compliance/v1/audit.pw.h"
#include "paywire/compliance/v1/monitoring.pw.h"
#include "paywire/compliance/v1/screening.pw.h"
#include "paywire/compliance/v1/verification.pw.h"

#define COMPLIANCE_DOMAIN "compliance.paywire"
#define DEFAULT_PAGE      50
#define MAX_PAGE          500

/** Our own identity as the reporter of the audit events compliance records itself. */
#define COMPLIANCE_IDENTITY "spiffe://paywire/compliance"

/** An audit event as a service reports it (borrowed). */
typedef struct audit_entry {
    const char *actor;
    const char *action;
    const char *subject_id;
    const char *source;
    /** A JSON object (I-JSON, integer numbers only); NULL or "" for {}. */
    const char *detail_json;
} audit_entry;

/**
 * In the caller's transaction: appends e to the audit chain once per key
 * (reported as COMPLIANCE_IDENTITY), so the event commits or rolls back with
 * what it records. Returns its sequence. Does not return on failure.
 */
int64_t audit_record(svc_req *r, const char *key, const audit_entry *e);

/** audit.c: fills the AuditService handlers. */
void audit_handlers_init(paywire_compliance_v1_audit_service_handlers *h);

/** lists.c: UploadSanctionsList and ListSanctionsLists. */
void lists_handlers_init(paywire_compliance_v1_screening_service_handlers *h);

/** screening.c: the in-memory indexes of the active list versions, shared by the workers. */
typedef struct compliance_lists compliance_lists;
/** PW_OK or PW_ERRNO(ENOMEM). */
pw_status compliance_lists_new(compliance_lists **out);
/** NULL is a no-op. */
void compliance_lists_free(compliance_lists *c);

#include "index.h"

/** The process-wide state (svc_service.setup), read-only but for the list cache's own lock. */
typedef struct compliance_state {
    paywire_compliance_v1_audit_service_handlers audit;
    paywire_compliance_v1_screening_service_handlers screening;
    paywire_compliance_v1_verification_service_handlers verification;
    paywire_compliance_v1_monitoring_service_handlers monitoring;
    compliance_lists *lists;
    sx_config thresholds;
    /** ISO codes under comprehensive sanctions, comma-separated ("CU,IR,KP,SY"). */
    char comprehensive[256];
} compliance_state;

/** screening.c: ScreenParty and GetScreening. */
void screening_handlers_init(paywire_compliance_v1_screening_service_handlers *h);

/** svc_service.register_services of compliance-server (main.c): every service of the package. */
pw_status compliance_register(pw_server *server, svc_app *app);

#endif
