/*
 * register.c: mounts the finance services on a worker's server. Settlement
 * (the issue "Finance service, part 2") is mounted with no handlers yet, so
 * its methods answer UNIMPLEMENTED (and reflection lists them).
 */
#include "fees.h"
#include "fx.h"
#include "recon.h"

static const paywire_finance_v1_settlement_service_handlers no_settlement = {0};

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
        rv = recon_register(server, app);
    }
    return rv;
}
