/*
 * register.c: mounts the finance services on a worker's server. What part 2
 * (issue 19) has not built yet answers UNIMPLEMENTED (and reflection lists it).
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
