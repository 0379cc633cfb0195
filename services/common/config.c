/*
 * config.c: typed service configuration. A file of "key = value" lines ('#'
 * comments), then environment overrides PREFIX_KEY (upper case): e.g.
 * PW_MERCHANT_DATABASE_URL overrides database_url. Only settings the service
 * declares are accepted, so a misspelt key is an error at start-up rather
 * than a default silently kept; every error names the key and its source.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <paywire/alloc.h>
#include <paywire/log.h>
#include "svc.h"

#define MAX_SETTINGS 96

extern char **environ;

typedef struct entry {
    const svc_setting *def;
    char *value;
    /* "FILE:LINE", "PW_X_KEY" or "default": for error messages. */
    char source[160];
    int64_t number;
} entry;

struct svc_config {
    entry entries[MAX_SETTINGS];
    int n;
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

static entry *find(const svc_config *c, const char *key)
{
    for (int i = 0; i < c->n; i++) {
        if (strcmp(c->entries[i].def->key, key) == 0) {
            return (entry *)&c->entries[i];
        }
    }
    return NULL;
}

static pw_status add_schema(svc_config *c, const svc_setting *list)
{
    for (const svc_setting *d = list; d != NULL && d->key != NULL; d++) {
        if (c->n == MAX_SETTINGS || find(c, d->key) != NULL) {
            return PW_INVALID_ARGUMENT;
        }
        c->entries[c->n].def = d;
        snprintf(c->entries[c->n].source, sizeof(c->entries[c->n].source), "default");
        c->n++;
    }
    return PW_OK;
}

static pw_status set(svc_config *c, const char *key, const char *value, const char *source,
                     char *err, size_t err_len)
{
    entry *e = find(c, key);
    if (e == NULL) {
        snprintf(err, err_len, "%s: unknown setting \"%s\"", source, key);
        return PW_INVALID_ARGUMENT;
    }
    char *v = pw_strdup(value);
    if (v == NULL) {
        return PW_ERRNO(ENOMEM);
    }
    pw_free(e->value);
    e->value = v;
    snprintf(e->source, sizeof(e->source), "%s", source);
    return PW_OK;
}

static pw_status read_file(svc_config *c, const char *path, char *err, size_t err_len)
{
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        snprintf(err, err_len, "cannot read config file %s: %s", path, strerror(errno));
        return PW_INVALID_ARGUMENT;
    }
    char line[2048];
    int lineno = 0;
    pw_status rv = PW_OK;
    while (rv == PW_OK && fgets(line, sizeof(line), f) != NULL) {
        lineno++;
        char *s = trim(line);
        if (*s == '\0' || *s == '#') {
            continue;
        }
        char source[160];
        snprintf(source, sizeof(source), "%.140s:%d", path, lineno);
        char *eq = strchr(s, '=');
        if (eq == NULL) {
            snprintf(err, err_len, "%s: expected key = value", source);
            rv = PW_INVALID_ARGUMENT;
            break;
        }
        *eq = '\0';
        rv = set(c, trim(s), trim(eq + 1), source, err, err_len);
    }
    fclose(f);
    return rv;
}

/* PREFIX_KEY=value for every variable with the prefix: each must name a setting. */
static pw_status read_environment(svc_config *c, const char *prefix, char *err, size_t err_len)
{
    size_t plen = strlen(prefix);
    for (char **ev = environ; *ev != NULL; ev++) {
        const char *eq = strchr(*ev, '=');
        if (strncmp(*ev, prefix, plen) != 0 || eq == NULL || eq[1] == '\0') {
            continue;
        }
        char name[128], key[128];
        size_t n = (size_t)(eq - *ev);
        if (n >= sizeof(name)) {
            snprintf(err, err_len, "%.60s...: name too long", *ev);
            return PW_INVALID_ARGUMENT;
        }
        memcpy(name, *ev, n);
        name[n] = '\0';
        size_t k = 0;
        for (const char *p = name + plen; *p && k + 1 < sizeof(key); p++) {
            key[k++] = (char)tolower((unsigned char)*p);
        }
        key[k] = '\0';
        pw_status rv = set(c, key, eq + 1, name, err, err_len);
        if (rv != PW_OK) {
            return rv;
        }
    }
    return PW_OK;
}

static pw_status check(svc_config *c, char *err, size_t err_len)
{
    for (int i = 0; i < c->n; i++) {
        entry *e = &c->entries[i];
        const svc_setting *d = e->def;
        if (e->value == NULL && d->def != NULL && (e->value = pw_strdup(d->def)) == NULL) {
            return PW_ERRNO(ENOMEM);
        }
        if (e->value == NULL) {
            if (d->required) {
                snprintf(err, err_len,
                         "%s is required (in the config file, or its environment "
                         "variable)",
                         d->key);
                return PW_INVALID_ARGUMENT;
            }
            continue;
        }
        if (d->type == SVC_SETTING_INT) {
            char *end = NULL;
            errno = 0;
            long long v = strtoll(e->value, &end, 10);
            if (e->value[0] == '\0' || *end != '\0' || errno != 0) {
                snprintf(err, err_len, "%s (%s): \"%.40s\" is not a whole number", d->key,
                         e->source, e->value);
                return PW_INVALID_ARGUMENT;
            }
            if (v < d->min || v > d->max) {
                snprintf(err, err_len, "%s (%s): %lld is out of range %lld..%lld", d->key,
                         e->source, v, (long long)d->min, (long long)d->max);
                return PW_INVALID_ARGUMENT;
            }
            e->number = v;
        }
    }
    return PW_OK;
}

pw_status svc_config_load(svc_config **out, const svc_setting *common, const svc_setting *service,
                          const char *path, const char *env_prefix, char *err, size_t err_len)
{
    *out = NULL;
    svc_config *c = pw_calloc(1, sizeof(*c));
    if (c == NULL) {
        return PW_ERRNO(ENOMEM);
    }
    pw_status rv = add_schema(c, common);
    if (rv == PW_OK) {
        rv = add_schema(c, service);
    }
    if (rv != PW_OK) {
        snprintf(err, err_len, "the service declares a setting twice, or more than %d",
                 MAX_SETTINGS);
    }
    if (rv == PW_OK && path != NULL) {
        rv = read_file(c, path, err, err_len);
    }
    if (rv == PW_OK && env_prefix != NULL) {
        rv = read_environment(c, env_prefix, err, err_len);
    }
    if (rv == PW_OK) {
        rv = check(c, err, err_len);
    }
    if (rv != PW_OK) {
        svc_config_free(c);
        return rv;
    }
    *out = c;
    return PW_OK;
}

const char *svc_config_text(const svc_config *c, const char *key)
{
    const entry *e = find(c, key);
    PW_ASSERT(e != NULL);
    return e->value;
}

int64_t svc_config_int(const svc_config *c, const char *key)
{
    const entry *e = find(c, key);
    PW_ASSERT(e != NULL && e->def->type == SVC_SETTING_INT);
    return e->number;
}

void svc_config_free(svc_config *c)
{
    if (c == NULL) {
        return;
    }
    for (int i = 0; i < c->n; i++) {
        pw_free(c->entries[i].value);
    }
    pw_free(c);
}

int svc_caller_has_scope(const svc_caller *c, const char *scope)
{
    if (c->internal) {
        return 1;
    }
    if (scope == NULL) {
        return 0;
    }
    size_t n = strlen(scope);
    for (const char *p = c->scopes; (p = strstr(p, scope)) != NULL; p += n) {
        if ((p == c->scopes || p[-1] == ',') && (p[n] == ',' || p[n] == '\0')) {
            return 1;
        }
    }
    return 0;
}
