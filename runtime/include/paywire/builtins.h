#ifndef PAYWIRE_BUILTINS_H
#define PAYWIRE_BUILTINS_H

/*
 * The standard gRPC services every paywire server offers (library
 * paywire_builtins): grpc.health.v1.Health and server reflection
 * (grpc.reflection.v1 and v1alpha), so standard tools work against any
 * paywire server.
 */
#include <paywire/server.h>

#ifdef __cplusplus
extern "C" {
#endif

/** grpc.health.v1.HealthCheckResponse.ServingStatus. */
typedef enum pw_health_status {
    PW_HEALTH_UNKNOWN = 0,
    PW_HEALTH_SERVING = 1,
    PW_HEALTH_NOT_SERVING = 2,
} pw_health_status;

/** A server's health registry, owned by the server (freed when it closes). */
typedef struct pw_health pw_health;

/**
 * Mounts grpc.health.v1.Health (Check and Watch) on server. The overall
 * service "" starts SERVING; services report their own status with
 * pw_health_set. When pw_server_shutdown begins, every service turns
 * NOT_SERVING and watchers are told. Returns PW_OK with *out (may be NULL)
 * set to the registry; PW_ALREADY_EXISTS (mounted twice) or PW_ERRNO(ENOMEM),
 * with *out set to NULL.
 */
PW_EXTERN pw_status pw_health_enable(pw_server *server, pw_health **out);

/**
 * Sets a service's status ("" is the whole server; the name is copied) and
 * notifies its watchers. Returns PW_OK, or PW_ERRNO(ENOMEM) with the status
 * unchanged.
 */
PW_EXTERN pw_status pw_health_set(pw_health *health, const char *service, pw_health_status status);

/** The current status of service ("" for the whole server); UNKNOWN when never set. */
PW_EXTERN pw_health_status pw_health_get(const pw_health *health, const char *service);

/**
 * Logs one structured line per call (module "access"): service, method, peer,
 * code, duration_ms, request_id (x-request-id metadata), trace_id (from
 * traceparent), bytes in and out; INTERNAL, UNKNOWN and DATA_LOSS at error
 * level, the rest at info. Payloads and metadata values are never logged, and
 * the line passes pw_log_redact like every other. service is copied. Returns
 * PW_OK or PW_ERRNO(ENOMEM).
 */
PW_EXTERN pw_status pw_access_log_enable(pw_server *server, const char *service);

/**
 * Mounts server reflection, grpc.reflection.v1 and v1alpha: ListServices,
 * FileByFilename and FileContainingSymbol (files with their imports), from the
 * descriptors generated code registers. Returns PW_OK, PW_ALREADY_EXISTS
 * (mounted twice) or PW_ERRNO(ENOMEM).
 */
PW_EXTERN pw_status pw_reflection_enable(pw_server *server);

#ifdef __cplusplus
}
#endif
#endif
