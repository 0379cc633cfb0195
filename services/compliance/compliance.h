#ifndef PAYWIRE_COMPLIANCE_H
#define PAYWIRE_COMPLIANCE_H

/* The compliance service (docs/design/compliance.md): what its files share. */
#include "svc_main.h"
#include "paywire/compliance/v1/audit.pw.h"
#include "paywire/compliance/v1/monitoring.pw.h"
#include "paywire/compliance/v1/screening.pw.h"
#include "paywire/compliance/v1/verification.pw.h"

#define COMPLIANCE_DOMAIN "compliance.paywire"

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

/**
 * A JSON object of n name/value pairs (kv[2i], kv[2i+1], strings escaped) for an audit entry's
 * detail_json, in call memory.
 */
char *audit_detail(svc_req *r, const char *const *kv, int n);

/*
 * Page tokens of the lists (audit.c) over svc_page_token, for int64 keyset positions (a
 * sequence, a seq). page_after returns the position after which the page starts (0: the first),
 * with a page_token violation for a token of other filters; page_size adds a violation for a
 * negative size and clamps (0: SVC_PAGE_DEFAULT).
 */
int64_t page_after(svc_req *r, const char *token, const char *filters);
char *page_token(svc_req *r, int64_t last, const char *filters);
int page_size(svc_req *r, int32_t size);

/** audit.c: the per-loop queues of AppendEvent's batches, shared by the workers (a lock). */
typedef struct audit_queues audit_queues;
/** PW_OK or PW_ERRNO(ENOMEM). */
pw_status audit_queues_new(audit_queues **out);
/** NULL is a no-op. */
void audit_queues_free(audit_queues *a);

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
    audit_queues *queues;
    sx_config thresholds;
    /** ISO codes under comprehensive sanctions, comma-separated ("CU,IR,KP,SY"). */
    char comprehensive[256];
    /** The identity provider's key that signs reviewer tokens (EVP_PKEY), or NULL: no decisions. */
    void *reviewer_key;
} compliance_state;

/** screening.c: ScreenParty and GetScreening. */
void screening_handlers_init(paywire_compliance_v1_screening_service_handlers *h);
/**
 * In the caller's transaction: screens party against the active lists (failing closed) for
 * subject, stores the screening and fills resp (call memory). Does not return on failure.
 */
void screening_run(svc_req *r, const Paywire__Compliance__V1__Party *party, const char *subject,
                   Paywire__Compliance__V1__ScreenPartyResponse *resp);

/** The stored screening id (GetScreening's answer), in call memory; NOT_FOUND ends the handler. */
Paywire__Compliance__V1__Screening *screening_load(svc_req *r, int in_tx, const char *id);
/** The ScreeningReviewState of its stored name ("OPEN"), 0 when unknown. */
int screening_review_state(const char *name);

/** cases.c: VerificationService. */
void cases_handlers_init(paywire_compliance_v1_verification_service_handlers *h);
/**
 * In the caller's transaction: opens an INVESTIGATION case of merchant for subject (an alert
 * "alt_…"), with no party; returns its id (call memory). Does not return on failure.
 */
char *cases_open_investigation(svc_req *r, const char *merchant, const char *subject);

/** monitoring.c: MonitoringService. At most this many rules in a set. */
#define MONITORING_MAX_RULES 50
void monitoring_handlers_init(paywire_compliance_v1_monitoring_service_handlers *h);
/**
 * In ScreenTransaction's transaction: applies the synchronous rules in force (threshold,
 * high-risk country) to the payment screened as screening: a hit adds its reason to resp,
 * raises its alert (once per rule version, rule and payment; resp->alert_id) and, for a rule
 * with hold_for_review, turns ALLOW into REVIEW. Does not return on failure.
 */
void monitoring_screen(svc_req *r, const Paywire__Compliance__V1__ScreenTransactionRequest *req,
                       const char *screening,
                       Paywire__Compliance__V1__ScreenTransactionResponse *resp);

/** reviews.c: ScreeningService.DecideScreening. */
void reviews_handlers_init(paywire_compliance_v1_screening_service_handlers *h);

/** reviewer.c: the identity provider's public key (an EVP_PKEY) from a PEM file. */
pw_status reviewer_key_load(const char *path, void **out, char *err, size_t err_len);
/** NULL is a no-op. */
void reviewer_key_free(void *key);
/**
 * The verified reviewer of this call: the subject of its paywire-reviewer-token (ES256 JWT,
 * audience "compliance", issued within 600 s), in call memory. Without a valid token ends with
 * PERMISSION_DENIED REVIEWER_IDENTITY_REQUIRED saying why. Does not return on failure.
 */
const char *reviewer_identify(svc_req *r);

/** 1 when item is one of the comma-separated csv. */
int compliance_in_csv(const char *csv, const char *item);

/** The closed lists of reason codes (comma-separated) and a check of a decision's codes. */
#define CASE_REASON_CODES                                                         \
    "identity_verified,documents_verified,ownership_verified,address_verified,"   \
    "sanctions_false_positive,sanctions_match,document_expired,document_missing," \
    "information_mismatch,high_risk_business,information_requested,other"
#define SCREENING_REASON_CODES \
    "name_mismatch,dob_mismatch,country_mismatch,different_entity,confirmed_listing,other"
/** Adds violations for field when codes is empty, too long, or has a code not in the list. */
void reason_codes_check(svc_req *r, const char *field, char *const *codes, size_t n,
                        const char *list);
/** The codes comma-joined, in call memory. */
char *reason_codes_join(svc_req *r, char *const *codes, size_t n);

/** svc_service.register_services of compliance-server (main.c): every service of the package. */
pw_status compliance_register(pw_server *server, svc_app *app);

#endif
