/*
 * mint.c: reviewer tokens (mint.h). The signature is ECDSA over the ASCII of
 * "base64url(header).base64url(claims)", converted from OpenSSL's DER to the
 * 64 bytes r ‖ s that JWS requires (RFC 7518 §3.4).
 */
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <openssl/bn.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <paywire/buf.h>
#include "mint.h"

static pw_status b64url(pw_buf *out, const void *data, size_t len)
{
    size_t at = out->len;
    pw_status rv = pw_base64_encode(out, data, len, 0);
    for (size_t i = at; rv == PW_OK && i < out->len; i++) {
        out->data[i] = out->data[i] == '+' ? '-' : out->data[i] == '/' ? '_' : out->data[i];
    }
    return rv;
}

static EVP_PKEY *read_key(const char *path)
{
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        return NULL;
    }
    EVP_PKEY *k = PEM_read_PrivateKey(f, NULL, NULL, NULL);
    fclose(f);
    if (k != NULL && (EVP_PKEY_get_base_id(k) != EVP_PKEY_EC || EVP_PKEY_get_bits(k) != 256)) {
        EVP_PKEY_free(k);
        k = NULL;
    }
    return k;
}

/* The ES256 signature (r ‖ s) of len bytes at data into sig. */
static pw_status sign(EVP_PKEY *k, const void *data, size_t len, uint8_t sig[64])
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    unsigned char der[80];
    size_t der_len = sizeof(der);
    int ok = ctx != NULL && EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, k) == 1 &&
             EVP_DigestSign(ctx, der, &der_len, data, len) == 1;
    EVP_MD_CTX_free(ctx);
    const unsigned char *p = der;
    ECDSA_SIG *es = ok ? d2i_ECDSA_SIG(NULL, &p, (long)der_len) : NULL;
    ok = es != NULL && BN_bn2binpad(ECDSA_SIG_get0_r(es), sig, 32) == 32 &&
         BN_bn2binpad(ECDSA_SIG_get0_s(es), sig + 32, 32) == 32;
    ECDSA_SIG_free(es);
    return ok ? PW_OK : PW_INTERNAL;
}

pw_status pwreviewer_mint(const char *key_path, const char *sub, int64_t iat, int64_t exp,
                          char *out, size_t cap)
{
    for (const char *c = sub; *c; c++) {
        if (*c == '"' || *c == '\\' || (unsigned char)*c < 0x20) {
            return PW_INVALID_ARGUMENT;
        }
    }
    EVP_PKEY *k = read_key(key_path);
    if (k == NULL) {
        return PW_INVALID_ARGUMENT;
    }
    static const char header[] = "{\"alg\":\"ES256\",\"typ\":\"JWT\"}";
    char claims[512];
    int n = snprintf(claims, sizeof(claims),
                     "{\"sub\":\"%s\",\"aud\":\"compliance\",\"iat\":%lld,\"exp\":%lld}", sub,
                     (long long)iat, (long long)exp);
    pw_buf b = {0};
    uint8_t sig[64];
    pw_status rv = n > 0 && (size_t)n < sizeof(claims) ? PW_OK : PW_INVALID_ARGUMENT;
    rv = rv == PW_OK ? b64url(&b, header, strlen(header)) : rv;
    rv = rv == PW_OK ? pw_buf_append(&b, ".", 1) : rv;
    rv = rv == PW_OK ? b64url(&b, claims, (size_t)n) : rv;
    rv = rv == PW_OK ? sign(k, b.data, b.len, sig) : rv;
    rv = rv == PW_OK ? pw_buf_append(&b, ".", 1) : rv;
    rv = rv == PW_OK ? b64url(&b, sig, sizeof(sig)) : rv;
    if (rv == PW_OK && b.len + 1 > cap) {
        rv = PW_INVALID_ARGUMENT;
    }
    if (rv == PW_OK) {
        memcpy(out, b.data, b.len);
        out[b.len] = '\0';
    }
    pw_buf_reset(&b);
    EVP_PKEY_free(k);
    return rv;
}

pw_status pwreviewer_keygen(const char *private_path, const char *public_path)
{
    EVP_PKEY *k = EVP_EC_gen("P-256");
    if (k == NULL) {
        return PW_INTERNAL;
    }
    mode_t old = umask(077);
    FILE *priv = fopen(private_path, "w");
    umask(old);
    FILE *pub = fopen(public_path, "w");
    int ok = priv != NULL && pub != NULL &&
             PEM_write_PrivateKey(priv, k, NULL, NULL, 0, NULL, NULL) == 1 &&
             PEM_write_PUBKEY(pub, k) == 1;
    ok = (priv == NULL || fclose(priv) == 0) && ok;
    ok = (pub == NULL || fclose(pub) == 0) && ok;
    EVP_PKEY_free(k);
    return ok ? PW_OK : PW_INVALID_ARGUMENT;
}
