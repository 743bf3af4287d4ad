/*
 * redis - the shared greylist store (Redis, via hiredis and its libevent
 * adapter); implements store.h so that several MX hosts keep one greylist.
 *
 * Keys are PREFIX + table letter + ":" + key bytes, or with key_hash = hmac
 * PREFIX + table letter + ":" + hex(HMAC-SHA256(secret, key)), so a shared
 * Redis holds no addresses. Every key carries the record's `expires` as its
 * TTL: Redis expires records itself and nothing sweeps.
 *
 * store_rmw() is asynchronous and never blocks the loop: each operation has
 * a timeout (redis_timeout); a timeout or a connection failure completes
 * with status -1 (the caller answers per on_store_error). The first sight of
 * a key is atomic across daemons: concurrent first attempts at two MX hosts
 * agree on one first_seen.
 *
 * When Redis goes away the backend reconnects with backoff; it logs nothing
 * itself but reports state changes through the optional callback, once per
 * change, so the daemon logs "Redis unreachable"/"Redis back" once.
 *
 * Synchronous calls (get/put/del/foreach/stats) use a separate blocking
 * connection, for the command line.
 */
#ifndef GREYSPF_STORE_REDIS_H
#define GREYSPF_STORE_REDIS_H

#include <stdbool.h>
#include <stddef.h>

#include "store/store.h"

/* Default per-operation timeout, seconds ([store] redis_timeout). */
#define REDIS_DEFAULT_TIMEOUT 1.0
#define REDIS_DEFAULT_PREFIX "greyspf:"

struct redis_config {
	/* "redis://[user:password@]host:port/db" or "unix:/path[?db=N]" */
	const char *url;
	const char *prefix;   /* NULL: REDIS_DEFAULT_PREFIX */
	double timeout;       /* seconds; <= 0: REDIS_DEFAULT_TIMEOUT */
	bool hash_keys;       /* key_hash = hmac */
	const char *secret;   /* key_secret, required with hash_keys */
	/* Called on a change of reachability (up = true/false). */
	void (*on_state)(void *arg, bool up, const char *why);
	void *state_arg;
};

/*
 * Connects (asynchronously when base is given; the first operations may
 * complete with -1 until the connection is up). Returns NULL with a reason
 * for a bad configuration (URL syntax, missing secret); an unreachable
 * server is not an error here.
 */
struct store *store_redis_open(struct event_base *base,
			       const struct redis_config *cfg, char *err,
			       size_t errsize);

#endif
