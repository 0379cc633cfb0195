#ifndef PAYWIRE_FINANCE_FEES_H
#define PAYWIRE_FINANCE_FEES_H

/* FeeService (fees.c): schedules and fee calculation. */
#include "ledger_names.h"

/** Mounts FeeService on server with app as user data. */
pw_status fees_register(pw_server *server, svc_app *app);

#endif
