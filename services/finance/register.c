/*
 * register.c: mounts the five finance services on a worker's server (every
 * method is served; reflection lists them).
 */
#include "fees.h"
#include "fx.h"
#include "recon.h"
#include "settlement.h"

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
        rv = settlement_register(server, app);
    }
    if (rv == PW_OK) {
        rv = recon_register(server, app);
    }
    return rv;
}
