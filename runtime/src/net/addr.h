#ifndef PAYWIRE_NET_ADDR_H
#define PAYWIRE_NET_ADDR_H

/* Address strings shared by listeners and channels. */
#include <stddef.h>
#include <paywire/status.h>

/**
 * Splits "host:port" or "[v6-host]:port" into host (brackets removed) and port.
 * Returns PW_OK, or PW_INVALID_ARGUMENT when the separator or port is missing,
 * the port is not a decimal in 0..65535, or the host does not fit host_size.
 * An empty host is allowed here; callers that need one check it.
 */
pw_status pw__parse_host_port(const char *s, char *host, size_t host_size, int *port);

#endif
