#ifndef PAYWIRE_PWREVIEWER_MINT_H
#define PAYWIRE_PWREVIEWER_MINT_H

/*
 * Reviewer identity tokens as the company identity provider issues them for
 * the compliance service (docs/design/compliance.md, Four-eyes): a JWT signed
 * ES256 (P-256, SHA-256, signature r ‖ s), audience "compliance". A stand-in
 * for the provider in the local stack and the tests; compliance only ever
 * holds the public key.
 */
#include <stddef.h>
#include <stdint.h>
#include <paywire/status.h>

/**
 * Writes "header.claims.signature" for subject sub, issued at iat and expiring
 * at exp (seconds since the epoch), signed with the P-256 private key in the
 * PEM file key_path, into out (cap bytes, NUL-terminated). Returns PW_OK,
 * PW_INVALID_ARGUMENT (no such key, not P-256, sub with a quote or a control
 * character, out too small) or PW_INTERNAL (signing failed).
 */
pw_status pwreviewer_mint(const char *key_path, const char *sub, int64_t iat, int64_t exp,
                          char *out, size_t cap);

/**
 * A new P-256 key pair: the private key to private_path (mode 0600) and the
 * public key to public_path, both PEM. PW_OK, PW_INVALID_ARGUMENT (a file
 * cannot be written) or PW_INTERNAL.
 */
pw_status pwreviewer_keygen(const char *private_path, const char *public_path);

#endif
