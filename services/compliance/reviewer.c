/*
 * reviewer.c: the reviewer of a decision (docs/design/compliance.md,
 * Four-eyes). The review console forwards the end user's identity token from
 * the company identity provider in the paywire-reviewer-token metadata: a JWT
 * (RFC 7519) signed ES256 (RFC 7518 §3.4: ECDSA P-256 with SHA-256, the
 * signature as the 64 bytes r ‖ s), audience "compliance", issued at most
 * 600 s before the decision. The reviewer recorded is its subject; the
 * caller's mTLS identity is never a reviewer, so one console login cannot be
 * both reviewers.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <openssl/bn.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <paywire/json.h>
#include "compliance.h"

#define TOKEN_MAX  4096
#define MAX_AGE_S  600
#define MAX_SKEW_S 60
#define P(x)       Paywire__Compliance__V1__##x

pw_status reviewer_key_load(const char *path, void **out, char *err, size_t err_len)
{
    *out = NULL;
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        snprintf(err, err_len, "reviewer_token_key: cannot open %s", path);
        return PW_INVALID_ARGUMENT;
    }
    EVP_PKEY *k = PEM_read_PUBKEY(f, NULL, NULL, NULL);
    fclose(f);
    if (k == NULL || EVP_PKEY_get_base_id(k) != EVP_PKEY_EC || EVP_PKEY_get_bits(k) != 256) {
        EVP_PKEY_free(k);
        snprintf(err, err_len, "reviewer_token_key: %s is not a PEM P-256 public key", path);
        return PW_INVALID_ARGUMENT;
    }
    *out = k;
    return PW_OK;
}

void reviewer_key_free(void *key)
{
    EVP_PKEY_free(key);
}

/* Decodes one base64url part of the token into call memory (NUL-terminated). */
static uint8_t *part(svc_req *r, const char *s, size_t len, size_t *out_len)
{
    uint8_t *b = svc_alloc(r, len + 1);
    if (pw_base64_decode(s, len, b, out_len) != PW_OK) {
        return NULL;
    }
    b[*out_len] = '\0';
    return b;
}

/* 1 when sig (r ‖ s, 64 bytes) is key's ES256 signature of the len bytes at data. */
static int es256_ok(EVP_PKEY *key, const char *data, size_t len, const uint8_t *sig)
{
    ECDSA_SIG *es = ECDSA_SIG_new();
    BIGNUM *br = BN_bin2bn(sig, 32, NULL), *bs = BN_bin2bn(sig + 32, 32, NULL);
    if (es == NULL || br == NULL || bs == NULL || !ECDSA_SIG_set0(es, br, bs)) {
        BN_free(br);
        BN_free(bs);
        ECDSA_SIG_free(es);
        return 0;
    }
    unsigned char *der = NULL;
    int der_len = i2d_ECDSA_SIG(es, &der);
    ECDSA_SIG_free(es);
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    int ok = der_len > 0 && ctx != NULL &&
             EVP_DigestVerifyInit(ctx, NULL, EVP_sha256(), NULL, key) == 1 &&
             EVP_DigestVerify(ctx, der, (size_t)der_len, (const unsigned char *)data, len) == 1;
    EVP_MD_CTX_free(ctx);
    OPENSSL_free(der);
    return ok;
}

/* The JSON of one part as message type (unknown members ignored), or NULL. */
static ProtobufCMessage *decode(svc_req *r, const ProtobufCMessageDescriptor *type,
                                const uint8_t *json, size_t len)
{
    pw_json_options o = {.ignore_unknown = 1};
    ProtobufCMessage *m = NULL;
    if (pw_json_decode(type, (const char *)json, len, &o, &m, NULL, 0) != PW_OK) {
        return NULL;
    }
    /* Copied into call memory through a pack, so the handler's failure path frees nothing. */
    size_t n = protobuf_c_message_get_packed_size(m);
    uint8_t *packed = svc_alloc(r, n + 1);
    protobuf_c_message_pack(m, packed);
    pw_protobuf_free(m);
    ProtobufCMessage *copy = NULL;
    if (pw_call_unpack(r->call, pw_slice_make(packed, n), type, &copy) != PW_OK) {
        return NULL;
    }
    return copy;
}

_Noreturn static void refuse(svc_req *r, const char *why)
{
    svc_fail_reason(r, PW_PERMISSION_DENIED, "REVIEWER_IDENTITY_REQUIRED",
                    "a decision needs the reviewer's identity token (paywire-reviewer-token "
                    "metadata): %s",
                    why);
}

const char *reviewer_identify(svc_req *r)
{
    const compliance_state *st = r->app->service;
    if (st->reviewer_key == NULL) {
        refuse(r, "no reviewer_token_key is configured, so no token can be verified");
    }
    const pw_metadata_entry *e =
        pw_metadata_get(pw_call_metadata(r->call), "paywire-reviewer-token");
    if (e == NULL || e->value_len == 0) {
        refuse(r, "none was sent");
    }
    if (e->value_len > TOKEN_MAX) {
        refuse(r, "longer than 4096 bytes");
    }
    char *tok = svc_alloc(r, e->value_len + 1);
    memcpy(tok, e->value, e->value_len);
    char *dot1 = strchr(tok, '.');
    char *dot2 = dot1 ? strchr(dot1 + 1, '.') : NULL;
    if (dot2 == NULL || strchr(dot2 + 1, '.') != NULL) {
        refuse(r, "not a JWT (header.claims.signature)");
    }
    size_t hl, cl, sl;
    uint8_t *h = part(r, tok, (size_t)(dot1 - tok), &hl);
    uint8_t *c = part(r, dot1 + 1, (size_t)(dot2 - dot1 - 1), &cl);
    uint8_t *sig = part(r, dot2 + 1, strlen(dot2 + 1), &sl);
    if (h == NULL || c == NULL || sig == NULL) {
        refuse(r, "a part is not base64url");
    }
    P(ReviewerTokenHeader) *hd = (P(ReviewerTokenHeader) *)decode(
        r, &paywire__compliance__v1__reviewer_token_header__descriptor, h, hl);
    if (hd == NULL || strcmp(hd->alg, "ES256") != 0) {
        refuse(r, "its header does not name ES256");
    }
    if (sl != 64 || !es256_ok(st->reviewer_key, tok, (size_t)(dot2 - tok), sig)) {
        refuse(r, "its signature does not verify against the identity provider's key");
    }
    P(ReviewerTokenClaims) *cl_ = (P(ReviewerTokenClaims) *)decode(
        r, &paywire__compliance__v1__reviewer_token_claims__descriptor, c, cl);
    if (cl_ == NULL) {
        refuse(r, "its claims are not a JSON object");
    }
    int64_t now = (int64_t)time(NULL);
    if (strcmp(cl_->aud, "compliance") != 0) {
        refuse(r, "its audience is not \"compliance\"");
    }
    if (cl_->exp <= now) {
        refuse(r, "it has expired");
    }
    if (cl_->iat > now + MAX_SKEW_S || now - cl_->iat > MAX_AGE_S) {
        refuse(r, "it was not issued within the last 600 s");
    }
    if (!svc_text_ok(cl_->sub, 200)) {
        refuse(r, "it names no subject");
    }
    return cl_->sub;
}
