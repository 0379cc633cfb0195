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

/** audit.c: fills the AuditService handlers. */
void audit_handlers_init(paywire_compliance_v1_audit_service_handlers *h);

/** svc_service.register_services of compliance-server (main.c): every service of the package. */
pw_status compliance_register(pw_server *server, svc_app *app);

#endif
