/* ids.c: ids, secrets, hashing and sealing (OpenSSL). */
#include <stdio.h>
#include <string.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include "svc.h"

static const char crockford[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

pw_status svc_new_id(const char *prefix, char *out, size_t cap)
{
    uint8_t r[17] = {0};
    size_t plen = strlen(prefix);
    if (cap < plen + 28 || RAND_bytes(r + 1, 16) != 1) {
        return PW_INTERNAL;
    }
    memcpy(out, prefix, plen);
    out[plen] = '_';
    /* 136 bits (the top 8 zero) as 26 base32 digits, most significant first: 130 bits used. */
    for (size_t i = 0; i < 26; i++) {
        size_t bit = 136 - 130 + i * 5; /* skip the 6 leading zero bits */
        uint32_t v = 0;
        for (int b = 0; b < 5; b++, bit++) {
            v = v << 1 | ((uint32_t)(r[bit / 8] >> (7 - bit % 8)) & 1u);
        }
        out[plen + 1 + i] = crockford[v];
    }
    out[plen + 27] = '\0';
    return PW_OK;
}

int svc_id_ok(const char *id, const char *prefix)
{
    size_t plen = strlen(prefix);
    if (id == NULL || strncmp(id, prefix, plen) != 0 || id[plen] != '_' ||
        strlen(id) != plen + 27) {
        return 0;
    }
    for (size_t i = plen + 1; i < plen + 27; i++) {
        if (strchr(crockford, id[i]) == NULL || id[i] == '\0') {
            return 0;
        }
    }
    return 1;
}

pw_status svc_new_secret(const char *prefix, char *out, size_t cap)
{
    static const char b62[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    size_t plen = strlen(prefix);
    if (cap < plen + 44) {
        return PW_INTERNAL;
    }
    memcpy(out, prefix, plen);
    /* 43 characters drawn without bias (reject bytes >= 248): 256 bits of entropy. */
    size_t n = 0;
    while (n < 43) {
        uint8_t buf[64];
        if (RAND_bytes(buf, sizeof(buf)) != 1) {
            return PW_INTERNAL;
        }
        for (size_t i = 0; i < sizeof(buf) && n < 43; i++) {
            if (buf[i] < 248) {
                out[plen + n++] = b62[buf[i] % 62];
            }
        }
    }
    out[plen + 43] = '\0';
    OPENSSL_cleanse(&n, sizeof(n));
    return PW_OK;
}

void svc_sha256(const void *data, size_t len, uint8_t out[32])
{
    unsigned int n = 32;
    EVP_Digest(data, len, out, &n, EVP_sha256(), NULL);
}

/* ---- sealing ---- */

pw_status svc_sealer_init(svc_sealer *s, const char *hex)
{
    memset(s, 0, sizeof(*s));
    if (hex == NULL || strlen(hex) != 64) {
        return PW_INVALID_ARGUMENT;
    }
    for (int i = 0; i < 32; i++) {
        unsigned v;
        if (sscanf(hex + 2 * i, "%2x", &v) != 1) {
            return PW_INVALID_ARGUMENT;
        }
        s->key[i] = (uint8_t)v;
    }
    s->ready = 1;
    return PW_OK;
}

static pw_status gcm(const svc_sealer *s, int enc, const uint8_t *iv, const uint8_t *in, int len,
                     uint8_t *out, uint8_t *tag)
{
    EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
    int n = 0,
        ok = c != NULL && EVP_CipherInit_ex(c, EVP_aes_256_gcm(), NULL, s->key, iv, enc) == 1;
    if (ok && !enc) {
        ok = EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_TAG, 16, tag) == 1;
    }
    ok = ok && EVP_CipherUpdate(c, out, &n, in, len) == 1;
    int m = 0;
    ok = ok && EVP_CipherFinal_ex(c, out + n, &m) == 1;
    if (ok && enc) {
        ok = EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, 16, tag) == 1;
    }
    EVP_CIPHER_CTX_free(c);
    return ok ? PW_OK : enc ? PW_INTERNAL : PW_DATA_LOSS;
}

pw_status svc_seal(const svc_sealer *s, const char *text, char *out, size_t cap)
{
    size_t len = strlen(text);
    uint8_t buf[12 + 512 + 16];
    if (!s->ready || len > 512 || cap < (12 + len + 16 + 2) / 3 * 4 + 1) {
        return PW_INVALID_ARGUMENT;
    }
    if (RAND_bytes(buf, 12) != 1) {
        return PW_INTERNAL;
    }
    pw_status rv = gcm(s, 1, buf, (const uint8_t *)text, (int)len, buf + 12, buf + 12 + len);
    if (rv == PW_OK) {
        EVP_EncodeBlock((unsigned char *)out, buf, (int)(12 + len + 16));
    }
    OPENSSL_cleanse(buf, sizeof(buf));
    return rv;
}

pw_status svc_seal_bytes(const svc_sealer *s, const void *data, size_t len, uint8_t *out,
                         size_t cap)
{
    if (!s->ready || len > INT32_MAX - 28 || cap < len + 28) {
        return PW_INVALID_ARGUMENT;
    }
    if (RAND_bytes(out, 12) != 1) {
        return PW_INTERNAL;
    }
    return gcm(s, 1, out, data, (int)len, out + 12, out + 12 + len);
}

pw_status svc_open_bytes(const svc_sealer *s, const uint8_t *sealed, size_t len, uint8_t *out,
                         size_t cap)
{
    if (!s->ready || len < 28 || len > INT32_MAX || cap < len - 28) {
        return PW_DATA_LOSS;
    }
    return gcm(s, 0, sealed, sealed + 12, (int)(len - 28), out, (uint8_t *)sealed + len - 16);
}

pw_status svc_open(const svc_sealer *s, const char *sealed, char *out, size_t cap)
{
    uint8_t buf[(12 + 512 + 16) / 3 * 4 + 8];
    size_t slen = strlen(sealed);
    if (!s->ready || slen > sizeof(buf) - 8 || slen % 4 != 0) {
        return PW_DATA_LOSS;
    }
    int n = EVP_DecodeBlock(buf, (const unsigned char *)sealed, (int)slen);
    while (slen > 0 && sealed[slen - 1] == '=') {
        slen--;
        n--;
    }
    if (n < 28 || (size_t)(n - 28) + 1 > cap) {
        return PW_DATA_LOSS;
    }
    int len = n - 28;
    pw_status rv = gcm(s, 0, buf, buf + 12, len, (uint8_t *)out, buf + 12 + len);
    out[rv == PW_OK ? len : 0] = '\0';
    OPENSSL_cleanse(buf, sizeof(buf));
    return rv;
}

uint64_t svc_draw(uint64_t seed, uint64_t counter, uint64_t n)
{
    uint64_t z = seed + 0x9e3779b97f4a7c15ULL * (counter + 1);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    z ^= z >> 31;
    return n == 0 ? 0 : z % n;
}
