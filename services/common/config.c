/*
 * config.c: service configuration. A file of "key = value" lines ('#'
 * comments), then environment overrides PREFIX_KEY (upper case): e.g.
 * PW_MERCHANT_DATABASE_URL overrides database_url.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <paywire/alloc.h>
#include "svc.h"

#define MAX_ENTRIES 64

struct svc_config {
    char *keys[MAX_ENTRIES];
    char *values[MAX_ENTRIES];
    int n;
    char *env_prefix;
};

static char *trim(char *s)
{
    while (isspace((unsigned char)*s)) {
        s++;
    }
    size_t n = strlen(s);
    while (n > 0 && isspace((unsigned char)s[n - 1])) {
        s[--n] = '\0';
    }
    return s;
}

static pw_status set(svc_config *c, const char *key, const char *value)
{
    for (int i = 0; i < c->n; i++) {
        if (strcmp(c->keys[i], key) == 0) {
            char *v = pw_strdup(value);
            if (v == NULL) {
                return PW_ERRNO(ENOMEM);
            }
            pw_free(c->values[i]);
            c->values[i] = v;
            return PW_OK;
        }
    }
    if (c->n == MAX_ENTRIES) {
        return PW_RESOURCE_EXHAUSTED;
    }
    c->keys[c->n] = pw_strdup(key);
    c->values[c->n] = pw_strdup(value);
    if (c->keys[c->n] == NULL || c->values[c->n] == NULL) {
        return PW_ERRNO(ENOMEM);
    }
    c->n++;
    return PW_OK;
}

pw_status svc_config_load(svc_config **out, const char *path, const char *env_prefix, char *err,
                          size_t err_len)
{
    svc_config *c = pw_calloc(1, sizeof(*c));
    if (c == NULL) {
        return PW_ERRNO(ENOMEM);
    }
    c->env_prefix = pw_strdup(env_prefix);
    if (path != NULL) {
        FILE *f = fopen(path, "r");
        if (f == NULL) {
            snprintf(err, err_len, "cannot read config file %s", path);
            svc_config_free(c);
            return PW_INVALID_ARGUMENT;
        }
        char line[1024];
        int lineno = 0;
        while (fgets(line, sizeof(line), f) != NULL) {
            lineno++;
            char *s = trim(line);
            if (*s == '\0' || *s == '#') {
                continue;
            }
            char *eq = strchr(s, '=');
            if (eq == NULL) {
                snprintf(err, err_len, "%s:%d: expected key = value", path, lineno);
                fclose(f);
                svc_config_free(c);
                return PW_INVALID_ARGUMENT;
            }
            *eq = '\0';
            if (set(c, trim(s), trim(eq + 1)) != PW_OK) {
                snprintf(err, err_len, "%s:%d: too many settings", path, lineno);
                fclose(f);
                svc_config_free(c);
                return PW_INVALID_ARGUMENT;
            }
        }
        fclose(f);
    }
    *out = c;
    return PW_OK;
}

const char *svc_config_get(const svc_config *c, const char *key, const char *def)
{
    char env[128];
    snprintf(env, sizeof(env), "%s%s", c->env_prefix ? c->env_prefix : "", key);
    for (char *p = env; *p; p++) {
        *p = (char)toupper((unsigned char)*p);
    }
    const char *v = getenv(env);
    if (v != NULL && v[0] != '\0') {
        return v;
    }
    for (int i = 0; i < c->n; i++) {
        if (strcmp(c->keys[i], key) == 0) {
            return c->values[i];
        }
    }
    return def;
}

void svc_config_free(svc_config *c)
{
    if (c == NULL) {
        return;
    }
    for (int i = 0; i < c->n; i++) {
        pw_free(c->keys[i]);
        pw_free(c->values[i]);
    }
    pw_free(c->env_prefix);
    pw_free(c);
}

int svc_caller_has_scope(const svc_caller *c, const char *scope)
{
    if (c->internal) {
        return 1;
    }
    size_t n = strlen(scope);
    for (const char *p = c->scopes; (p = strstr(p, scope)) != NULL; p += n) {
        if ((p == c->scopes || p[-1] == ',') && (p[n] == ',' || p[n] == '\0')) {
            return 1;
        }
    }
    return 0;
}
