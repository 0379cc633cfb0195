#ifndef PAYWIRE_FINANCE_H
#define PAYWIRE_FINANCE_H

/*
 * The finance service (docs/design/finance.md): the double-entry ledger,
 * fees and FX. What main.c and the modules of this folder share.
 */
#include "svc_main.h"
#include "paywire/finance/v1/fees.pw.h"
#include "paywire/finance/v1/fx.pw.h"
#include "paywire/finance/v1/ledger.pw.h"
#include "paywire/finance/v1/reconciliation.pw.h"
#include "paywire/finance/v1/settlement.pw.h"

#define FINANCE_DOMAIN "finance.paywire"
/** Where finance-server listens unless the `listen` setting says otherwise. */
#define FINANCE_LISTEN "127.0.0.1:15063,[::1]:15063"

/** svc_service.register_services: the five finance services on server. */
pw_status finance_register(pw_server *server, svc_app *app);

/** LedgerService's handlers (ledger.c). */
pw_status ledger_register(pw_server *server, svc_app *app);

#endif
