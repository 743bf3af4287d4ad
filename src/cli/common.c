/*
 * common - helpers shared by the commands; declared in cli.h.
 */
#include "cli/cli.h"
#include "conf/conf.h"
#include "store/lmdb.h"
#include "store/redis.h"
#include "store/store.h"
#include "util/log.h"

#include <stdio.h>

struct conf *cli_load_conf(const char *file, char *err, size_t errsize)
{
	return conf_load(file ? file : CONF_DEFAULT_FILE, err, errsize);
}

/* The daemon logs each change of Redis reachability once. */
static void redis_state_log(void *arg, bool up, const char *why)
{
	(void)arg;
	if (up)
		log_info("store: Redis reachable again");
	else
		log_warn("store: Redis unreachable: %s", why);
}

struct store *cli_open_store(const struct conf *c, struct event_base *base,
			     bool readonly, char *err, size_t errsize)
{
	switch (c->backend) {
	case CONF_BACKEND_LMDB: {
		struct lmdb_config lc = {
			.path = c->store_path,
			.mapsize = 0,
			.sync = c->store_sync,
			.readonly = readonly,
		};
		return store_lmdb_open(base, &lc, err, errsize);
	}
	case CONF_BACKEND_REDIS: {
		struct redis_config rc = {
			.url = c->redis_url,
			.prefix = c->redis_prefix,
			.timeout = (double)c->redis_timeout_ms / 1000.0,
			.hash_keys = c->key_hash == CONF_KEY_HASH_HMAC,
			.secret = c->key_secret,
			.on_state = base != NULL ? redis_state_log : NULL,
			.state_arg = NULL,
		};
		return store_redis_open(base, &rc, err, errsize);
	}
	}
	snprintf(err, errsize, "store backend not available in this build");
	return NULL;
}
