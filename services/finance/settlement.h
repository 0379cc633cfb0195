#ifndef PAYWIRE_FINANCE_SETTLEMENT_H
#define PAYWIRE_FINANCE_SETTLEMENT_H

/* SettlementService (settlement.c, reserves.c): batches, their lines and their payout to
 * clearing; reserve rules. */
#include "finance.h"

/** Mounts SettlementService on server with app as user data. */
pw_status settlement_register(pw_server *server, svc_app *app);
/** The reserve rules' handlers (reserves.c) into h. */
void reserves_handlers_init(paywire_finance_v1_settlement_service_handlers *h);

#endif
