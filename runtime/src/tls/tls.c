/*
 * tls.c: OpenSSL context set-up and peer identity. Every SSL object runs over
 * memory BIOs (net/conn.c moves the bytes), so nothing here does I/O. Errors are
 * taken off OpenSSL's queue, logged once and turned into pw_status here.
 */
#include <stdio.h>
#include <string.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <paywire/alloc.h>
#include <paywire/log.h>
#include "tls/tls.h"

void pw__tls_drain_errors(const char *what, char *buf, size_t size)
{
    unsigned long e;
    int first = 1;
    if (size > 0) {
        buf[0] = '\0';
    }
    while ((e = ERR_get_error()) != 0) {
        char text[256];
        ERR_error_string_n(e, text, sizeof(text));
        if (first && size > 0) {
            snprintf(buf, size, "%s", text);
            first = 0;
        }
        PW_LOG(PW_LOG_DEBUG, "tls", "%s: %s", what, text);
    }
}

/* The offered protocol named name (RFC 7301 list: length-prefixed names), or NULL. */
static const unsigned char *alpn_find(const unsigned char *in, unsigned int inlen, const char *name)
{
    size_t len = strlen(name);
    for (unsigned int i = 0; i < inlen;) {
        unsigned int n = in[i];
        if (i + 1 + n > inlen) {
            break;
        }
        if (n == len && memcmp(in + i + 1, name, len) == 0) {
            return in + i + 1;
        }
        i += 1 + n;
    }
    return NULL;
}

/* gRPC requires "h2"; "http/1.1" is accepted for JSON calls while the server allows it. */
static int alpn_select(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                       const unsigned char *in, unsigned int inlen, void *arg)
{
    (void)ssl;
    const int *http1_ok = arg;
    const unsigned char *p = alpn_find(in, inlen, "h2");
    if (p == NULL && http1_ok != NULL && *http1_ok) {
        p = alpn_find(in, inlen, "http/1.1");
    }
    if (p == NULL) {
        return SSL_TLSEXT_ERR_ALERT_FATAL;
    }
    *out = p;
    *outlen = p[-1];
    return SSL_TLSEXT_ERR_OK;
}

static pw_status ctx_fail(SSL_CTX *ctx, const char *what, const char *file, char *err,
                          size_t err_size)
{
    char ossl[256];
    pw__tls_drain_errors(what, ossl, sizeof(ossl));
    snprintf(err, err_size, "%s %s: %s", what, file ? file : "", ossl);
    SSL_CTX_free(ctx);
    return PW_INVALID_ARGUMENT;
}

static pw_status load_cert_key(SSL_CTX *ctx, const pw_tls_config *cfg, char *err, size_t n)
{
    if (SSL_CTX_use_certificate_chain_file(ctx, cfg->cert_file) != 1) {
        return ctx_fail(ctx, "cannot load certificate", cfg->cert_file, err, n);
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, cfg->key_file, SSL_FILETYPE_PEM) != 1) {
        return ctx_fail(ctx, "cannot load private key", cfg->key_file, err, n);
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
        return ctx_fail(ctx, "private key does not match certificate", cfg->key_file, err, n);
    }
    return PW_OK;
}

static SSL_CTX *ctx_common(const SSL_METHOD *method)
{
    SSL_CTX *ctx = SSL_CTX_new(method);
    if (ctx == NULL) {
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    /* RFC 9113 §9.2.2: no TLS compression, no renegotiation for HTTP/2. */
    SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    return ctx;
}

pw_status pw__tls_server_ctx(const pw_tls_config *cfg, const int *http1_ok, SSL_CTX **out,
                             char *err, size_t err_size)
{
    if (cfg->cert_file == NULL || cfg->key_file == NULL) {
        snprintf(err, err_size, "TLS listener needs cert_file and key_file");
        return PW_INVALID_ARGUMENT;
    }
    SSL_CTX *ctx = ctx_common(TLS_server_method());
    if (ctx == NULL) {
        return ctx_fail(NULL, "cannot create server TLS context", NULL, err, err_size);
    }
    pw_status rv = load_cert_key(ctx, cfg, err, err_size);
    if (rv != PW_OK) {
        return rv;
    }
    if (cfg->ca_file != NULL) {
        if (SSL_CTX_load_verify_locations(ctx, cfg->ca_file, NULL) != 1) {
            return ctx_fail(ctx, "cannot load CA file", cfg->ca_file, err, err_size);
        }
        int mode = SSL_VERIFY_PEER;
        if (cfg->require_client_cert) {
            mode |= SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
        }
        SSL_CTX_set_verify(ctx, mode, NULL);
        /* Session ids are needed when client certs are verified and sessions resumed. */
        SSL_CTX_set_session_id_context(ctx, (const unsigned char *)"paywire", 7);
    }
    SSL_CTX_set_alpn_select_cb(ctx, alpn_select, (void *)http1_ok);
    *out = ctx;
    return PW_OK;
}

pw_status pw__tls_client_ctx(const pw_tls_config *cfg, SSL_CTX **out, char *err, size_t err_size)
{
    SSL_CTX *ctx = ctx_common(TLS_client_method());
    if (ctx == NULL) {
        return ctx_fail(NULL, "cannot create client TLS context", NULL, err, err_size);
    }
    if (cfg->ca_file != NULL) {
        if (SSL_CTX_load_verify_locations(ctx, cfg->ca_file, NULL) != 1) {
            return ctx_fail(ctx, "cannot load CA file", cfg->ca_file, err, err_size);
        }
    } else if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
        return ctx_fail(ctx, "cannot load the system CA store", NULL, err, err_size);
    }
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    if (cfg->cert_file != NULL || cfg->key_file != NULL) {
        pw_status rv = load_cert_key(ctx, cfg, err, err_size);
        if (rv != PW_OK) {
            return rv;
        }
    }
    static const unsigned char alpn[] = {2, 'h', '2'};
    SSL_CTX_set_alpn_protos(ctx, alpn, sizeof(alpn));
    *out = ctx;
    return PW_OK;
}

static void identity_add_san(pw__tls_identity *id, const char *prefix, const unsigned char *v,
                             int len)
{
    char **sans = pw_realloc(id->sans, (id->san_count + 1) * sizeof(char *));
    if (sans == NULL) {
        return;
    }
    id->sans = sans;
    size_t plen = strlen(prefix);
    char *s = pw_malloc(plen + (size_t)len + 1);
    if (s == NULL) {
        return;
    }
    memcpy(s, prefix, plen);
    memcpy(s + plen, v, (size_t)len);
    s[plen + (size_t)len] = '\0';
    id->sans[id->san_count++] = s;
}

static void identity_read_sans(X509 *cert, pw__tls_identity *id)
{
    GENERAL_NAMES *names = X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);
    if (names == NULL) {
        return;
    }
    for (int i = 0; i < sk_GENERAL_NAME_num(names); i++) {
        const GENERAL_NAME *gn = sk_GENERAL_NAME_value(names, i);
        if (gn->type == GEN_DNS) {
            identity_add_san(id, "DNS:", ASN1_STRING_get0_data(gn->d.dNSName),
                             ASN1_STRING_length(gn->d.dNSName));
        } else if (gn->type == GEN_URI) {
            identity_add_san(id, "URI:", ASN1_STRING_get0_data(gn->d.uniformResourceIdentifier),
                             ASN1_STRING_length(gn->d.uniformResourceIdentifier));
        }
    }
    GENERAL_NAMES_free(names);
}

void pw__tls_identity_read(SSL *ssl, pw__tls_identity *out)
{
    *out = (pw__tls_identity){0};
    X509 *cert = SSL_get1_peer_certificate(ssl);
    if (cert == NULL) {
        return;
    }
    out->verified = SSL_get_verify_result(ssl) == X509_V_OK;
    if (out->verified) {
        BIO *mem = BIO_new(BIO_s_mem());
        if (mem != NULL) {
            X509_NAME_print_ex(mem, X509_get_subject_name(cert), 0, XN_FLAG_RFC2253);
            char *data;
            long len = BIO_get_mem_data(mem, &data);
            out->subject = pw_strndup(data, (size_t)len);
            BIO_free(mem);
        }
        identity_read_sans(cert, out);
    }
    X509_free(cert);
}

void pw__tls_identity_free(pw__tls_identity *id)
{
    for (size_t i = 0; i < id->san_count; i++) {
        pw_free(id->sans[i]);
    }
    pw_free(id->sans);
    pw_free(id->subject);
    *id = (pw__tls_identity){0};
}
