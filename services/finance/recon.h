#ifndef PAYWIRE_FINANCE_RECON_H
#define PAYWIRE_FINANCE_RECON_H

/* ReconciliationService (recon.c): partner reports matched against the ledger, and breaks. */
#include "finance.h"

/** Mounts ReconciliationService on server with app as user data. */
pw_status recon_register(pw_server *server, svc_app *app);

#endif
