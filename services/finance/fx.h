#ifndef PAYWIRE_FINANCE_FX_H
#define PAYWIRE_FINANCE_FX_H

/* FxService (fx.c): currencies, rates, quotes and conversions. */
#include "ledger_names.h"

/** Mounts FxService on server with app as user data. */
pw_status fx_register(pw_server *server, svc_app *app);
/** 1 when code is one of the supported tokens (USDC, USDT, EURC, PYUSD), else 0. */
int fx_is_token(const char *code);

#endif
