/*
 * register.c: mounts the finance services on a worker's server. Settlement
 * and reconciliation are the issue "Finance service, part 2": mounted with
 * no handlers, so every method answers UNIMPLEMENTED (and reflection lists
 * them).
 */
#include "fees.h"
#include "fx.h"

static const paywire_finance_v1_settlement_service_handlers no_settlement = {0};
static const paywire_finance_v1_reconciliation_service_handlers no_reconciliation = {0};

pw_status finance_register(pw_server *server, svc_app *app)
{
    pw_status rv = ledger_register(server, app);
    if (rv == PW_OK) {
        rv = fees_register(server, app);
    }
    if (rv == PW_OK) {
        rv = fx_register(server, app);
    }
    if (rv == PW_OK) {
        rv = paywire_finance_v1_settlement_service_register(server, &no_settlement, app);
    }
    if (rv == PW_OK) {
        rv = paywire_finance_v1_reconciliation_service_register(server, &no_reconciliation, app);
    }
    return rv;
}
