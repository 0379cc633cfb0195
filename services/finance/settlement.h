#ifndef PAYWIRE_FINANCE_SETTLEMENT_H
#define PAYWIRE_FINANCE_SETTLEMENT_H

/* SettlementService (settlement.c): batches, their lines and their payout to clearing. */
#include "finance.h"

/** Mounts SettlementService on server with app as user data (what is not built: UNIMPLEMENTED). */
pw_status settlement_register(pw_server *server, svc_app *app);

#endif
