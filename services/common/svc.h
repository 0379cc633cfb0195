#ifndef PAYWIRE_SERVICES_SVC_H
#define PAYWIRE_SERVICES_SVC_H

/*
 * What every paywire business service shares (library pw_service_common):
 * ids and secrets, sealing of stored secrets, field validation with
 * BadRequest details, callers (mTLS identity or API key), the idempotent
 * transaction pattern of docs/design/merchant.md, and configuration.
 */
#include <stddef.h>
#include <stdint.h>
#include <paywire/db.h>
#include <paywire/errors.h>
#include <paywire/paywire.h>

/* ---- ids and secrets (OpenSSL's CSPRNG) ---- */

/** prefix + "_" + 26 Crockford base32 characters of 128 random bits into out (>= 40 bytes). */
pw_status svc_new_id(const char *prefix, char *out, size_t cap);
/** 1 when id is prefix + "_" + 26 Crockford base32 characters. */
int svc_id_ok(const char *id, const char *prefix);
/** prefix + 43 base62 characters of 256 random bits (e.g. "sk_live_…"). */
pw_status svc_new_secret(const char *prefix, char *out, size_t cap);
/**
 * A number in [0, n) (0 when n is 0): splitmix64 of seed and counter, for
 * simulators' seeded, reproducible draws (never for secrets).
 */
uint64_t svc_draw(uint64_t seed, uint64_t counter, uint64_t n);
/** SHA-256 of len bytes. */
void svc_sha256(const void *data, size_t len, uint8_t out[32]);
/**
 * The request fingerprint of the idempotent transaction: SHA-256 of request
 * packed with the string field skip_field (may be NULL) emptied and every map
 * field's entries, at any depth, in a canonical order, so a retry that sends
 * a map in another order has the same fingerprint. Allocates through the
 * allocator hook and frees before it returns. Returns PW_OK, or PW_INTERNAL
 * when the request cannot be re-read (then out is not written).
 */
pw_status svc_fingerprint(const struct ProtobufCMessage *request, const char *skip_field,
                          uint8_t out[32]);

/* ---- sealing secrets at rest: AES-256-GCM, key from configuration ---- */

typedef struct svc_sealer {
    uint8_t key[32];
    int ready;
} svc_sealer;

/** Key from 64 hex characters. PW_OK or PW_INVALID_ARGUMENT. */
pw_status svc_sealer_init(svc_sealer *s, const char *hex_key);
/** base64(nonce | ciphertext | tag) of text into out (NUL-terminated). */
pw_status svc_seal(const svc_sealer *s, const char *text, char *out, size_t cap);
/** The reverse; PW_DATA_LOSS when it does not authenticate. */
pw_status svc_open(const svc_sealer *s, const char *sealed, char *out, size_t cap);
/**
 * Seals len bytes of any size (personal data): nonce | ciphertext | tag, len + 28 bytes, into
 * out (cap bytes). PW_OK, PW_INVALID_ARGUMENT (no key, cap too small) or PW_INTERNAL.
 */
pw_status svc_seal_bytes(const svc_sealer *s, const void *data, size_t len, uint8_t *out,
                         size_t cap);
/** The reverse: len - 28 bytes into out; PW_DATA_LOSS when it does not authenticate. */
pw_status svc_open_bytes(const svc_sealer *s, const uint8_t *sealed, size_t len, uint8_t *out,
                         size_t cap);

/* ---- validation ---- */

int svc_country_ok(const char *code);
int svc_currency_ok(const char *code);
/** 1–max characters of UTF-8 text without control characters. */
int svc_text_ok(const char *s, size_t max);
int svc_email_ok(const char *s);
/** An absolute https:// URL; with public_only, not an IP literal in a private, loopback or
 * link-local range, nor localhost. */
int svc_https_url_ok(const char *s, int public_only);
/** ISO 13616 IBAN: country length and mod-97 check (spaces allowed). */
int svc_iban_ok(const char *s);
/** 1 for "YYYY-MM-DD" naming a real day (1970-9999). */
int svc_date_ok(const char *s);
/** An address on chain (paywire.common.v1.Chain values): EVM (EIP-55 when mixed case), Solana,
 * Tron. */
int svc_wallet_ok(int chain, const char *address);

/* ---- callers ---- */

typedef struct svc_caller {
    /** 1: a service with an allowed mTLS identity (all scopes). */
    int internal;
    /** The mTLS URI SAN, or the API key id. */
    char identity[256];
    /** API-key callers: their merchant and mode ("TEST"/"LIVE"). */
    char merchant_id[40];
    char mode[8];
    char scopes[512];
    char merchant_state[24];
} svc_caller;

/** 1 when the caller may use scope (internal callers may use any). */
int svc_caller_has_scope(const svc_caller *c, const char *scope);

/* ---- configuration: "key = value" lines, then PREFIX_KEY environment overrides ---- */

typedef enum svc_setting_type {
    /** Any text. */
    SVC_SETTING_TEXT = 0,
    /** A whole number in [min, max]. */
    SVC_SETTING_INT,
} svc_setting_type;

/** One setting a service understands; lists end with an entry whose key is NULL. */
typedef struct svc_setting {
    const char *key;
    svc_setting_type type;
    /** The value when neither the file nor the environment sets it; NULL: unset. */
    const char *def;
    int64_t min;
    int64_t max;
    /** 1: the service cannot start without it. */
    int required;
} svc_setting;

typedef struct svc_config svc_config;
/**
 * Reads path (NULL: no file), then every environment variable env_prefix + KEY
 * (upper case; "PW_MERCHANT_" + "DATABASE_URL"), against the settings of
 * common and service (either may be NULL). Refuses an unknown key (in the file
 * or the environment), a malformed line, a number that is not one or out of
 * range, and a missing required setting, with err naming the key and where it
 * came from. Returns PW_OK, PW_INVALID_ARGUMENT (err says why) or
 * PW_ERRNO(ENOMEM). *out is NULL on failure.
 */
pw_status svc_config_load(svc_config **out, const svc_setting *common, const svc_setting *service,
                          const char *path, const char *env_prefix, char *err, size_t err_len);
/** A setting's text, or NULL when it is unset. key must be one of the settings (asserted). */
const char *svc_config_text(const svc_config *c, const char *key);
/** A SVC_SETTING_INT setting's value (0 when unset). */
int64_t svc_config_int(const svc_config *c, const char *key);
/** NULL is a no-op. */
void svc_config_free(svc_config *c);

#endif
