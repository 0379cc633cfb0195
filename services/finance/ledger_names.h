#ifndef PAYWIRE_FINANCE_LEDGER_NAMES_H
#define PAYWIRE_FINANCE_LEDGER_NAMES_H

/*
 * The ledger's names: account kinds as the API numbers them and as the
 * database spells them (the accounts table of docs/design/finance.md), and
 * Money in call memory.
 */
#include <stdint.h>
#include "finance.h"

/** Sums and products of money that int64 cannot hold (GCC and Clang; -Wpedantic knows it
 * only with __extension__). */
__extension__ typedef __int128 ledger_i128;

/** "merchant_available" for ACCOUNT_KIND_MERCHANT_AVAILABLE; NULL for UNSPECIFIED or unknown. */
const char *ledger_kind_name(int kind);
/** The AccountKind of a stored name; 0 (UNSPECIFIED) when unknown. */
int ledger_kind_value(const char *name);
/** 1 for the merchant kinds (pending, available, reserved). */
int ledger_kind_is_merchant(int kind);
/** 1 for the kinds owned by a partner or institution (receivable, partner fees, cash). */
int ledger_kind_has_counterparty(int kind);
/** The wall clock in microseconds since the Unix epoch (the times the ledger stores). */
int64_t ledger_now_us(void);
/** A Timestamp in microseconds since the Unix epoch. */
int64_t ledger_ts_us(const struct Google__Protobuf__Timestamp *t);
/** "TEST" or "LIVE" for a Mode; NULL for UNSPECIFIED or unknown. */
const char *ledger_mode_name(int mode);
/** The Mode of a stored "TEST" / "LIVE". */
Paywire__Common__V1__Mode ledger_mode_value(const char *name);
/** As ledger_mode_name, with a violation for field ("required: MODE_TEST or MODE_LIVE") on NULL. */
const char *ledger_mode_required(svc_req *r, int mode, const char *field);
/** amount of currency, in r's call memory. */
Paywire__Common__V1__Money *ledger_money(svc_req *r, int64_t amount, const char *currency);

#endif
