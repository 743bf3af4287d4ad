/*
 * common - helpers shared by the commands; declared in cli.h.
 */
#include "cli/cli.h"
#include "conf/conf.h"
#include "store/lmdb.h"
#include "store/store.h"

#include <stdio.h>

struct conf *cli_load_conf(const char *file, char *err, size_t errsize)
{
	return conf_load(file ? file : CONF_DEFAULT_FILE, err, errsize);
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
	case CONF_BACKEND_REDIS:
		break;
	}
	snprintf(err, errsize, "store backend not available in this build");
	return NULL;
}
