#ifndef PAYWIRE_PWCTL_DYN_H
#define PAYWIRE_PWCTL_DYN_H

/*
 * Message types built at run time from FileDescriptorProtos (from server
 * reflection or from generated code's embedded descriptors), as protobuf-c
 * descriptors: protobuf-c packs, unpacks and frees messages of any descriptor
 * (message_init NULL selects its generic initialisation), and the JSON
 * mapping reads descriptors only, so one JSON codec serves compiled and
 * discovered types alike.
 */
#include <stddef.h>
#include <stdint.h>
#include <protobuf-c/protobuf-c.h>
#include <paywire/status.h>

typedef struct dyn_pool dyn_pool;

typedef struct dyn_method {
    /** "pkg.Service". */
    const char *service;
    /** "Method". */
    const char *name;
    const ProtobufCMessageDescriptor *input;
    const ProtobufCMessageDescriptor *output;
    int client_streaming;
    int server_streaming;
} dyn_method;

dyn_pool *dyn_new(void);
void dyn_free(dyn_pool *p);
/** Adds one serialized FileDescriptorProto (copied); a file already added is skipped. Returns PW_OK
 * or PW_INVALID_ARGUMENT (not a FileDescriptorProto, a name missing, a field number outside
 * 1..2^29-1, types nested over 64 deep): a server's answer is checked, never trusted. */
pw_status dyn_add_file(dyn_pool *p, const uint8_t *data, size_t len);
/** 1 when a file of that name was added. */
int dyn_has_file(const dyn_pool *p, const char *name);
/**
 * Builds descriptors for every added file. Call after the last dyn_add_file.
 * Returns PW_OK or PW_NOT_FOUND with err naming a type no file defines.
 */
pw_status dyn_build(dyn_pool *p, char *err, size_t err_len);
const ProtobufCMessageDescriptor *dyn_message(const dyn_pool *p, const char *full_name);
const ProtobufCEnumDescriptor *dyn_enum(const dyn_pool *p, const char *full_name);
/** "pkg.Svc/Method" or "pkg.Svc.Method"; NULL when unknown. */
const dyn_method *dyn_find_method(const dyn_pool *p, const char *name);
/** Services in the pool: index 0.. until NULL. */
const char *dyn_service(const dyn_pool *p, size_t i);
/** Methods: index 0.. until NULL. */
const dyn_method *dyn_method_at(const dyn_pool *p, size_t i);

#endif
