/*
 * lmdb - the embedded greylist store (LMDB); implements store.h.
 *
 * One environment in a directory, one named database per table. Safe for
 * many processes at once (a `greyspf serve` and any number of spawn-mode
 * `greyspf policy` processes): LMDB serialises writers with its lock file.
 *
 * Group commit: every store_rmw() of one event-loop turn runs inside one
 * write transaction, committed at the end of the turn; only then do their
 * `done` callbacks run. A process killed at any moment leaves the last
 * committed state, which includes every decision already answered.
 *
 * For callers (details at the top of lmdb.c):
 * - `done` gets err "" on success.
 * - store_put/del/expire/flush/close first commit the pending group and run
 *   its `done`s: flush or close the store before freeing what they use.
 * - With an event_base, a sync timer (1 s) is pending after each write, so
 *   event_base_dispatch() returns up to 1 s after the last write; close the
 *   store before freeing the base.
 * - Open the store after any fork(); its directory and files (data.mdb,
 *   lock.mdb, mode 0640) must be writable by every user that opens it,
 *   read-only opens included (readers take a slot in lock.mdb).
 */
#ifndef GREYSPF_STORE_LMDB_H
#define GREYSPF_STORE_LMDB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store/store.h"

/* Default map size: 64 MiB holds several hundred thousand records and is
 * doubled automatically when full. With MDB_WRITEMAP the data file is
 * created at the map size (sparse), so keep it modest. */
#define LMDB_DEFAULT_MAPSIZE ((size_t)64 << 20)

struct lmdb_config {
	const char *path;  /* directory; created if missing */
	size_t mapsize;    /* 0: LMDB_DEFAULT_MAPSIZE */
	bool sync;         /* fsync data on each commit (MDB_NOMETASYNC) */
	bool readonly;     /* for `greyspf db list/stats/dump` */
	/* Clock for the expiry checks of get and foreach, which take no `now`
	 * (rmw and expire are given theirs). NULL: time(NULL). Tests inject a
	 * fake clock here. */
	int64_t (*clock)(void *clock_arg);
	void *clock_arg;
};

/*
 * Opens (creating if needed) the store. base may be NULL for synchronous use
 * (command line): then store_rmw() commits at once before calling done.
 * Returns NULL with a reason in err.
 */
struct store *store_lmdb_open(struct event_base *base,
			      const struct lmdb_config *cfg, char *err,
			      size_t errsize);

#endif
