#ifndef PAYWIRE_AUTH_H
#define PAYWIRE_AUTH_H

/*
 * Authentication, authorisation and rate limits (library paywire_builtins),
 * as server interceptors: a rejected call never reaches its handler, and
 * every denial is logged as an audit event (module "audit"). Add them before
 * other interceptors that should only see accepted calls, and the rate limit
 * after the authenticators (it limits per authenticated principal).
 */
#include <stdint.h>
#include <paywire/server.h>

#ifdef __cplusplus
extern "C" {
#endif

/** The principal an authenticator accepted (mTLS identity or API key owner), or NULL. */
PW_EXTERN const char *pw_auth_principal(const pw_call *call);

/* ---- service-to-service: mTLS identities ---- */

typedef struct pw_authz pw_authz;

/**
 * An empty allow-list (it denies everything). Returns PW_OK with *out set, or
 * PW_ERRNO(ENOMEM) with *out set to NULL. Free it with pw_authz_free() unless
 * pw_authz_enable() took it.
 */
PW_EXTERN pw_status pw_authz_new(pw_authz **out);
/** Frees an allow-list that was never passed to pw_authz_enable(). Accepts NULL. */
PW_EXTERN void pw_authz_free(pw_authz *authz);
/**
 * Allows identity (a verified client certificate's first URI SAN, e.g.
 * "spiffe://paywire/orchestration", or its subject; "*" for any verified
 * peer) to call methods matching pattern: an exact path ("/pkg.Svc/Method"), all of a
 * service (the service path followed by a slash and a star), or "*" for everything.
 * Everything else is denied. Both strings are copied. Returns PW_OK;
 * PW_INVALID_ARGUMENT (a NULL string) or PW_ERRNO(ENOMEM), with authz unchanged.
 */
PW_EXTERN pw_status pw_authz_allow(pw_authz *authz, const char *identity, const char *pattern);
/**
 * Enforces authz on server: no verified certificate -> UNAUTHENTICATED, not
 * allowed -> PERMISSION_DENIED. The server owns authz from this call on,
 * whatever it returns (it is freed when the server closes, or at once when
 * nothing refers to it): never free it afterwards. Returns PW_OK or
 * PW_ERRNO(ENOMEM).
 */
PW_EXTERN pw_status pw_authz_enable(pw_server *server, pw_authz *authz);

/* ---- merchant-facing: bearer API keys ---- */

typedef struct pw_api_keys pw_api_keys;

/**
 * An empty keyring. Returns PW_OK with *out set, or PW_ERRNO(ENOMEM) with
 * *out set to NULL. Free it with pw_api_keys_free() unless
 * pw_api_keys_enable() took it.
 */
PW_EXTERN pw_status pw_api_keys_new(pw_api_keys **out);
/**
 * Frees a keyring that was never passed to pw_api_keys_enable(), wiping the
 * secrets' hashes. Accepts NULL.
 */
PW_EXTERN void pw_api_keys_free(pw_api_keys *keys);
/**
 * Creates a key for principal with space-separated scopes (NULL: none): writes
 * "<prefix><id>.<secret>" (from OpenSSL's CSPRNG) into key_out, which is the
 * only time the secret exists; the keyring keeps the id and SHA-256 of the
 * secret. key_size must be at least 128 and prefix at most 24 bytes. Returns
 * PW_OK; PW_INVALID_ARGUMENT, PW_INTERNAL (no randomness) or PW_ERRNO(ENOMEM),
 * with key_out set to "" (when key_size > 0) and the keyring unchanged.
 */
PW_EXTERN pw_status pw_api_keys_create(pw_api_keys *keys, const char *prefix, const char *principal,
                                       const char *scopes, char *key_out, size_t key_size);
/**
 * Revokes the key whose id (the part before '.') is key_id; effective for the
 * next call. Returns PW_OK, or PW_NOT_FOUND when no key has that id.
 */
PW_EXTERN pw_status pw_api_keys_revoke(pw_api_keys *keys, const char *key_id);
/**
 * Methods matching pattern need scope (both copied). Methods with no
 * requirement need only a valid key. Returns PW_OK; PW_INVALID_ARGUMENT (a
 * NULL string) or PW_ERRNO(ENOMEM), with keys unchanged.
 */
PW_EXTERN pw_status pw_api_keys_require(pw_api_keys *keys, const char *pattern, const char *scope);
/**
 * Enforces "authorization: Bearer <key>" on server: missing, unknown, revoked
 * or wrong -> UNAUTHENTICATED; a scope missing -> PERMISSION_DENIED. Secrets
 * are compared in constant time. The server owns keys from this call on,
 * whatever it returns (as pw_authz_enable). Returns PW_OK or PW_ERRNO(ENOMEM).
 */
PW_EXTERN pw_status pw_api_keys_enable(pw_server *server, pw_api_keys *keys);

/* ---- rate limits ---- */

/**
 * Token buckets by caller name, for one loop (not thread-safe): per_second
 * tokens a second, up to burst; a new caller starts full. Buckets live in a
 * fixed table of 4096 slots by hash of the name: two callers that collide
 * share a slot and the newer one resets it (fail-open, never fail-closed).
 */
typedef struct pw_rate_limiter pw_rate_limiter;

/**
 * Returns PW_OK with *out set; PW_INVALID_ARGUMENT (a zero rate or burst) or
 * PW_ERRNO(ENOMEM), with *out set to NULL. Free it with pw_rate_limiter_free().
 */
PW_EXTERN pw_status pw_rate_limiter_new(pw_rate_limiter **out, uint32_t per_second, uint32_t burst);
/** NULL is a no-op. */
PW_EXTERN void pw_rate_limiter_free(pw_rate_limiter *l);
/** Takes a token for caller at now_ms (e.g. uv_now): 0 when allowed, else the ms until one is. */
PW_EXTERN int64_t pw_rate_limiter_take(pw_rate_limiter *l, const char *caller, uint64_t now_ms);

/**
 * A token bucket per caller (the authenticated principal, else the peer
 * address): per_second tokens a second, up to burst. Over the limit:
 * RESOURCE_EXHAUSTED with a google.rpc.RetryInfo saying when to retry.
 * Returns PW_OK; PW_INVALID_ARGUMENT (a zero rate or burst) or
 * PW_ERRNO(ENOMEM).
 */
PW_EXTERN pw_status pw_rate_limit_enable(pw_server *server, uint32_t per_second, uint32_t burst);

#ifdef __cplusplus
}
#endif
#endif
