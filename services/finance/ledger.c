/*
 * ledger.c: LedgerService (docs/design/finance.md, Ledger model).
 */
#include "finance.h"

static const paywire_finance_v1_ledger_service_handlers ledger_handlers = {0};

pw_status ledger_register(pw_server *server, svc_app *app)
{
    return paywire_finance_v1_ledger_service_register(server, &ledger_handlers, app);
}
