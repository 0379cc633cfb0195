#ifndef PAYWIRE_JSON_H
#define PAYWIRE_JSON_H

/*
 * The proto3 JSON mapping (library paywire_builtins) over protobuf-c
 * descriptors, both directions: lowerCamelCase field names (proto names also
 * accepted on input), 64-bit integers as strings, enums by name, bytes as
 * base64, maps as objects, and the well-known types in their JSON forms
 * (Timestamp, Duration, wrappers, FieldMask, Struct/Value/ListValue, Any,
 * Empty). Errors name the JSON path and the field, e.g.
 * "payload.body: invalid base64".
 */
#include <stddef.h>
#include <paywire/buf.h>
#include <paywire/server.h>
#include <paywire/status.h>

#ifdef __cplusplus
extern "C" {
#endif

struct ProtobufCMessage;
struct ProtobufCMessageDescriptor;

/** Finds a message type by full name ("paywire.merchant.v1.Merchant") for Any; NULL if unknown. */
typedef const struct ProtobufCMessageDescriptor *(*pw_json_resolve_cb)(const char *full_name,
                                                                       void *user_data);

typedef struct pw_json_options {
    /** Output: also emit fields that hold their default value (0, "", [], false). */
    int emit_defaults;
    /** Output: proto field names (response_size) instead of JSON names (responseSize). */
    int proto_names;
    /** Output: enums as numbers instead of names. */
    int enums_as_ints;
    /** Input: skip unknown fields and unknown enum names instead of failing. */
    int ignore_unknown;
    /**
     * Any: where type URLs are looked up. The well-known types and the
     * google.rpc error details are always known; resolve (may be NULL) is
     * asked first.
     */
    pw_json_resolve_cb resolve;
    void *resolve_user_data;
} pw_json_options;

/**
 * Appends msg as JSON text (compact, one line, no NUL) to out. opts may be
 * NULL (defaults). On failure out keeps what it had and err (may be NULL)
 * gets the reason. Returns PW_OK, PW_INVALID_ARGUMENT (a value JSON cannot
 * carry: a Timestamp out of range, an Any of an unknown type, nesting deeper
 * than 100), PW_ERRNO(ENOMEM).
 */
PW_EXTERN pw_status pw_json_encode(const struct ProtobufCMessage *msg, const pw_json_options *opts,
                                   pw_buf *out, char *err, size_t err_len);

/**
 * Parses len bytes of JSON text as a message of type. Returns PW_OK with
 * *out a new message (allocated with pw_protobuf_allocator(); the caller
 * frees it with pw_protobuf_free()); PW_INVALID_ARGUMENT with err (may be
 * NULL) naming the path and the problem (bad JSON, wrong type, unknown
 * field, out of range, two members of one oneof), or PW_ERRNO(ENOMEM); *out
 * is set to NULL on failure.
 */
PW_EXTERN pw_status pw_json_decode(const struct ProtobufCMessageDescriptor *type, const char *json,
                                   size_t len, const pw_json_options *opts,
                                   struct ProtobufCMessage **out, char *err, size_t err_len);

/**
 * The JSON name of a proto field name: "response_size" → "responseSize".
 * Writes at most cap bytes, NUL included (truncating a longer name).
 */
PW_EXTERN void pw_json_name(const char *proto_name, char *out, size_t cap);

/**
 * Makes every unary method of server callable with JSON over HTTP
 * (Connect-style: POST /package.Service/Method, content-type
 * application/json, optional connect-timeout-ms), on the gRPC port over
 * HTTP/2 and HTTP/1.1. Requests decode with this mapping (unknown fields are
 * INVALID_ARGUMENT naming the field); responses are JSON; errors are
 * {"code":"invalid_argument","message":"...","details":[{"type":...,
 * "value":base64,"debug":{...}}]} with Connect's HTTP status. Any fields
 * resolve every message type reachable from the server's methods.
 * Returns PW_OK.
 */
PW_EXTERN pw_status pw_json_enable(pw_server *server);

/** Connect's name for a gRPC code: "invalid_argument", "canceled", ... */
PW_EXTERN const char *pw_json_code_name(pw_status code);

#ifdef __cplusplus
}
#endif
#endif
