/*
 * store - the greylist store interface: LMDB (embedded) or Redis (shared).
 *
 * The store keeps small fixed records under binary keys in three tables:
 *   STORE_TRIPLETS  key = grey_key of (client network, sender, recipient)
 *   STORE_CLIENTS   key = client network text; the auto-whitelist counter
 *   STORE_WHITELIST key = CIDR text; networks added by `greyspf db whitelist`
 * The store knows nothing of greylisting rules: the caller passes a pure
 * function that turns the old record (or none) into the new one, and the
 * backend applies it atomically (LMDB: inside its write transaction; Redis:
 * compare-and-set, so the function may run more than once and must depend
 * only on its inputs). Expiry is the record's own `expires` field: LMDB
 * sweeps expired records incrementally; Redis sets it as the key's TTL.
 *
 * Asynchrony: store_rmw() completes through `done`, always from the event
 * loop and only once the change is durable (LMDB: after the commit of the
 * loop turn's shared write transaction; Redis: after the reply). So a reply
 * sent from `done` is never ahead of the data. The synchronous calls
 * (foreach, get, put, delete, stats) are for the command line.
 *
 * Errors: functions return 0 or -1 with a reason in the caller's err buffer;
 * nothing here logs.
 */
#ifndef GREYSPF_STORE_STORE_H
#define GREYSPF_STORE_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct event_base;
struct store;

enum store_table {
	STORE_TRIPLETS,
	STORE_CLIENTS,
	STORE_WHITELIST,
	STORE_NTABLES
};

/* Longest key accepted: a network, two addresses of at most 320 octets
 * (RFC 5321 section 4.5.3.1: 64 + 1 + 255) and separators, with room. */
#define STORE_KEY_MAX 768

/* One record. Times are seconds since the epoch. */
struct store_rec {
	int64_t first_seen;
	int64_t last_seen;
	int64_t expires; /* the record may be deleted after this time */
	uint32_t count;  /* attempts seen */
	uint32_t passed; /* attempts that passed (triplets), passes (clients) */
};

enum store_verdict {
	STORE_KEEP,   /* leave the record as it was */
	STORE_WRITE,  /* store *new */
	STORE_DELETE, /* remove the record */
};

/*
 * The read-modify-write step: old is NULL when there is no (unexpired)
 * record. Writes the new record to *new and says what to do with it.
 * Must be pure: it may run more than once for one store_rmw().
 */
typedef enum store_verdict (*store_rmw_fn)(void *arg,
					   const struct store_rec *old,
					   struct store_rec *new);

/* Completion of store_rmw(): status 0 on success, -1 with a reason. */
typedef void (*store_done_fn)(void *arg, int status, const char *err);

/* Visitor for store_foreach(): return 0 to go on, non-zero to stop. */
typedef int (*store_visit_fn)(void *arg, const void *key, size_t keylen,
			      const struct store_rec *rec);

struct store_stats {
	size_t records[STORE_NTABLES];
	size_t bytes;   /* on-disk or in-memory size, 0 if unknown */
	uint64_t expired; /* records removed by expiry since open */
	uint64_t errors;  /* failed operations since open */
};

/* Backend operations; a backend fills this table. */
struct store_ops {
	const char *name;
	void (*close)(struct store *s);
	void (*rmw)(struct store *s, enum store_table t, const void *key,
		    size_t keylen, int64_t now, store_rmw_fn fn, void *fn_arg,
		    store_done_fn done, void *done_arg);
	int (*get)(struct store *s, enum store_table t, const void *key,
		   size_t keylen, struct store_rec *out, bool *found, char *err,
		   size_t errsize);
	int (*put)(struct store *s, enum store_table t, const void *key,
		   size_t keylen, const struct store_rec *rec, char *err,
		   size_t errsize);
	int (*del)(struct store *s, enum store_table t, const void *key,
		   size_t keylen, bool *found, char *err, size_t errsize);
	int (*foreach)(struct store *s, enum store_table t, store_visit_fn fn,
		       void *arg, char *err, size_t errsize);
	int (*stats)(struct store *s, struct store_stats *out, char *err,
		     size_t errsize);
	/* Removes up to max expired records; sets *removed. */
	int (*expire)(struct store *s, int64_t now, size_t max,
		      size_t *removed, char *err, size_t errsize);
	/* Makes every completed write durable now (command line, shutdown). */
	int (*flush)(struct store *s, char *err, size_t errsize);
	/* Optional: false while the backend is unreachable, so the daemon
	 * skips the synchronous calls (foreach) that would wait for it. NULL:
	 * always true (an embedded store). */
	bool (*healthy)(struct store *s);
};

/* Every backend's handle starts with this. */
struct store {
	const struct store_ops *ops;
};

/* Thin dispatchers, so callers never touch ops directly. */
static inline void store_rmw(struct store *s, enum store_table t,
			     const void *key, size_t keylen, int64_t now,
			     store_rmw_fn fn, void *fn_arg, store_done_fn done,
			     void *done_arg)
{
	s->ops->rmw(s, t, key, keylen, now, fn, fn_arg, done, done_arg);
}
static inline void store_close(struct store *s)
{
	if (s != NULL)
		s->ops->close(s);
}
static inline int store_get(struct store *s, enum store_table t,
			    const void *key, size_t keylen,
			    struct store_rec *out, bool *found, char *err,
			    size_t errsize)
{
	return s->ops->get(s, t, key, keylen, out, found, err, errsize);
}
static inline int store_put(struct store *s, enum store_table t,
			    const void *key, size_t keylen,
			    const struct store_rec *rec, char *err,
			    size_t errsize)
{
	return s->ops->put(s, t, key, keylen, rec, err, errsize);
}
static inline int store_del(struct store *s, enum store_table t,
			    const void *key, size_t keylen, bool *found,
			    char *err, size_t errsize)
{
	return s->ops->del(s, t, key, keylen, found, err, errsize);
}
static inline int store_foreach(struct store *s, enum store_table t,
				store_visit_fn fn, void *arg, char *err,
				size_t errsize)
{
	return s->ops->foreach(s, t, fn, arg, err, errsize);
}
static inline int store_stats(struct store *s, struct store_stats *out,
			      char *err, size_t errsize)
{
	return s->ops->stats(s, out, err, errsize);
}
static inline int store_expire(struct store *s, int64_t now, size_t max,
			       size_t *removed, char *err, size_t errsize)
{
	return s->ops->expire(s, now, max, removed, err, errsize);
}
static inline int store_flush(struct store *s, char *err, size_t errsize)
{
	return s->ops->flush(s, err, errsize);
}

static inline bool store_healthy(struct store *s)
{
	return s->ops->healthy == NULL || s->ops->healthy(s);
}

const char *store_table_name(enum store_table t);

/*
 * Portable form of a record, shared by the backends: a version byte, then
 * first_seen, last_seen, expires (int64) and count, passed (uint32), all
 * little-endian, no padding. A new layout gets a new version byte; a reader
 * treats a version or size it does not know as "no record".
 */
#define STORE_REC_VERSION 1
#define STORE_REC_SIZE (1 + 3 * 8 + 2 * 4)

/* Writes rec to out (exactly STORE_REC_SIZE bytes). */
void store_rec_encode(const struct store_rec *rec,
		      unsigned char out[STORE_REC_SIZE]);
/* Returns true and fills *out when buf holds a record of a known version and
 * size; false otherwise (*out is then untouched). */
bool store_rec_decode(const unsigned char *buf, size_t len,
		      struct store_rec *out);

#endif
