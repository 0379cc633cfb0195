#ifndef PAYWIRE_PAYWIRE_H
#define PAYWIRE_PAYWIRE_H

/* Umbrella header: the whole public API of the paywire runtime. */
#include <paywire/version.h>
#include <paywire/status.h>
#include <paywire/alloc.h>
#include <paywire/log.h>
#include <paywire/buf.h>
#include <paywire/metadata.h>
#include <paywire/tls.h>
#include <paywire/call.h>
#include <paywire/server.h>
#include <paywire/channel.h>
#include <paywire/stream.h>
#include <paywire/workers.h>

#endif
