#ifndef PAYWIRE_FINANCE_FX_H
#define PAYWIRE_FINANCE_FX_H

/* FxService (fx.c): currencies, rates, quotes and conversions. */
#include "ledger_names.h"

/** Mounts FxService on server with app as user data. */
pw_status fx_register(pw_server *server, svc_app *app);

#endif
