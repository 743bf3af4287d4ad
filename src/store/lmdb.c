/*
 * lmdb - the embedded greylist store on LMDB; implements store.h and lmdb.h.
 *
 * LAYOUT
 *	One LMDB environment in the directory cfg->path (created mode 0750),
 *	one named database per table ("triplets", "clients", "whitelist").
 *	Values are the portable record of store.h (store_rec_encode). Keys up to
 *	LMDB_KEY_DIRECT_MAX bytes are stored as they are; a longer key (LMDB
 *	refuses keys over 511 bytes, STORE_KEY_MAX is 768) is folded into its
 *	first LMDB_KEY_DIRECT_MAX bytes plus its SHA-256, and the full key is
 *	appended to the value so that foreach returns it and lookups verify it.
 *	A value that does not decode (unknown version, wrong size) is treated as
 *	no record, counted in stats.errors, and removed by the expiry sweep.
 *
 * DURABILITY
 *	sync=yes opens with MDB_NOMETASYNC: each commit fsyncs the data pages
 *	but not the meta page, which the next commit or the periodic
 *	mdb_env_sync() (every LMDB_SYNC_INTERVAL seconds after a write) makes
 *	durable. sync=no opens with MDB_NOSYNC and relies on that periodic sync
 *	alone. Either way a committed transaction is in the kernel's page cache
 *	before the commit returns, so a killed process (kill -9, crash) never
 *	loses one; a power loss or kernel crash may undo the transactions of
 *	the last second or so (sync=yes: at most the last commit). With
 *	sync=yes LMDB keeps the database consistent across a power loss; with
 *	sync=no (the default: greylist data is disposable, and the fsync per
 *	commit caps a busy server at the disk's fsync rate) LMDB documents that
 *	a system crash can also damage the file, so an administrator who
 *	cannot accept re-greylisting after a power cut sets sync=yes. Writers
 *	use MDB_WRITEMAP (see store_lmdb_open).
 *
 * GROUP COMMIT
 *	With an event_base, the first store_rmw() of a loop turn begins a write
 *	transaction and activates the commit event; every rmw of the turn runs
 *	its function inside that transaction at once and queues its `done`.
 *	The commit event is activated with event_active(): libevent appends it
 *	to the tail of the active queue, so it runs after every callback already
 *	ready in this turn (the ones the backend reported plus those activated
 *	before it) and before the loop polls again; the write transaction (and
 *	LMDB's writer lock, which every process sharing the store waits for) is
 *	never held across turns. If the base uses several priorities, the event
 *	keeps the default (middle) priority: the lowest one could be starved by
 *a busy loop and hold the lock for many turns. At the commit all queued `done`s
 *run with status 0, or with -1 and the reason if it failed. A transaction is
 *also committed early after LMDB_GROUP_MAX operations, to bound its size.
 *Without an event_base each call commits and then calls `done` before returning
 *(command line). Functions are pure (store.h), so when LMDB reports
 *MDB_MAP_FULL the transaction is aborted, the map doubled and the turn's
 *operations replayed. MDB_MAP_RESIZED (another process grew the map) is
 *answered by adopting the new size. Stale reader slots of killed processes are
 *	cleared with mdb_reader_check() at open and every
 *	LMDB_READER_CHECK_INTERVAL seconds while writing.
 *	The synchronous calls put, del and expire first commit the pending
 *	group (running its `done`s) because one thread cannot hold two LMDB
 *	write transactions; get reads through the pending write transaction,
 *	so it sees this process's uncommitted writes.
 *
 * EXPIRY
 *	A record whose `expires` is before now is dead: rmw passes NULL for it,
 *	get and foreach do not report it. store_expire() deletes at most `max`
 *	of them, examining at most LMDB_EXPIRE_SCAN_RATIO times as many records
 *	(and each record at most once), and resumes after the last key it
 *	examined (all tables in turn, wrapping around), so a timer can sweep a
 *	large store in small steps. The position is stored in the environment
 *	(see lmdb_cursor_key), shared by every process using the store. A large
 *call (`db purge`: max SIZE_MAX) commits every LMDB_EXPIRE_TXN_SCAN records,
 *letting other writers in.
 *
 * Environments must be opened after fork(), never inherited. Nothing here
 * logs; errors come back in the caller's buffer as "lmdb <what>: <reason>".
 */
#include "store/lmdb.h"
#include "util/sha256.h"

#include <errno.h>
#include <fcntl.h>
#include <lmdb.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "util/xalloc.h"

/* Directory and file modes: the daemon's group may read (greyspf db). */
#define LMDB_DIR_MODE 0750
#define LMDB_FILE_MODE 0640

/* Reader slots in the lock file: one per read transaction open at a time in
 * each process. Spawn mode may run Postfix's default_process_limit (100)
 * processes per service, for several services, plus command-line tools;
 * LMDB's default of 126 is too tight. Costs 64 bytes per slot. */
#define LMDB_MAX_READERS 1024

/* Seconds between a write and the mdb_env_sync() that makes it survive a
 * power loss: our choice, the same order as ext4's 5 s commit interval. */
#define LMDB_SYNC_INTERVAL 1

/* Seconds between two sweeps of stale reader slots while writing: a slot
 * left by a killed reader only stops page reuse, so a minute is ample. */
#define LMDB_READER_CHECK_INTERVAL 60

/* Largest map we grow to: 1 TiB of address space on 64-bit systems (the
 * file only takes what is used), 1 GiB on 32-bit ones. */
#define LMDB_MAPSIZE_MAX ((size_t)1 << (SIZE_MAX > UINT32_MAX ? 40 : 30))

/* Smallest map: LMDB needs a few pages for its meta and root pages. */
#define LMDB_MAPSIZE_MIN ((size_t)64 << 10)

/* Map doublings tried for one operation before it fails. */
#define LMDB_GROW_RETRIES 8

/* Retries of mdb_txn_begin() after MDB_MAP_RESIZED or MDB_READERS_FULL. */
#define LMDB_BEGIN_RETRIES 4

/* Operations per write transaction before an early commit: keeps the dirty
 * page list far below LMDB's MDB_IDL_UM_MAX (128 Ki pages, MDB_TXN_FULL). */
#define LMDB_GROUP_MAX 1000

/* Keys stored verbatim up to this size; longer ones are folded (see top).
 * LMDB's default MDB_MAXKEYSIZE is 511 bytes. */
#define LMDB_KEY_DIRECT_MAX 440
#define LMDB_DIGEST_LEN SHA256_DIGEST_SIZE
#define LMDB_KEY_FOLDED_LEN (LMDB_KEY_DIRECT_MAX + LMDB_DIGEST_LEN)

/* Expiry examines at most this many records per record it may delete
 * (with a floor), so one call stays short when few records are dead. */
#define LMDB_EXPIRE_SCAN_RATIO 16
#define LMDB_EXPIRE_SCAN_MIN 256
/* Records examined per write transaction of one expiry call (a few ms):
 * `greyspf db purge` sweeps everything, in steps that let the daemon's
 * group commits through and keep LMDB's dirty page list small. */
#define LMDB_EXPIRE_TXN_SCAN 20000

/* Where the expiry sweep stands, kept in LMDB's unnamed database beside the
 * table names so that every process sharing the store (short-lived
 * spawn-mode ones included) continues one sweep instead of each starting
 * over at the first key. The leading NUL keeps it from ever being taken for
 * a table name (mdb_stat -a and mdb_dump -a skip such keys). Value: version
 * byte, table byte, then the last key examined (possibly empty). */
static const char lmdb_cursor_key[] = "\0greyspf-expire-cursor";
#define LMDB_CURSOR_VERSION 1

/* Room for an operation's own error message. */
#define LMDB_OP_ERR_MAX 128

enum lmdb_op_kind {
	LMDB_OP_RMW,
	LMDB_OP_PUT,
	LMDB_OP_DEL,
};

/* One queued write: kept until the end of the turn so that it can be
 * replayed after a map resize, then its `done` runs. */
struct lmdb_op {
	enum lmdb_op_kind kind;
	enum store_table table;
	bool failed;	 /* final: err says why */
	bool *found_out; /* DEL: set when a record (live or not) existed */
	int64_t now;
	store_rmw_fn fn;
	void *fn_arg;
	store_done_fn done;
	void *done_arg;
	struct store_rec rec; /* PUT */
	size_t keylen;
	unsigned char key[STORE_KEY_MAX];
	char err[LMDB_OP_ERR_MAX];
};

struct lmdb_store {
	struct store base; /* first: store.h casts */
	MDB_env *env;
	MDB_dbi dbi[STORE_NTABLES];
	bool have_dbi[STORE_NTABLES]; /* read-only: table may not exist yet */
	bool readonly;
	int64_t (*clock)(void *clock_arg);
	void *clock_arg;

	struct event_base *evbase;
	struct event *commit_ev;
	struct event *sync_ev;
	bool commit_scheduled;
	bool dirty; /* committed since the last mdb_env_sync() */
	time_t last_reader_check;

	MDB_txn *wtxn;	     /* the turn's write transaction, or NULL */
	unsigned nreaders;   /* our read transactions now open */
	struct lmdb_op *ops; /* queued this turn */
	size_t nops, capops;
	size_t batch_start;    /* ops before it are final (early commits) */
	struct lmdb_op *spare; /* recycled array, avoids malloc per turn */
	size_t capspare;

	MDB_dbi main_dbi; /* LMDB's unnamed database: the expiry cursor */

	uint64_t expired;
	uint64_t errors;
};

/* ---------------------------------------------------------------- */
/* Keys and values. */

struct lmdb_key {
	MDB_val val;
	bool folded;
	unsigned char buf[LMDB_KEY_FOLDED_LEN];
};

/* Builds the stored form of a caller's key; val may point into key. */
static void key_make(const unsigned char *key, size_t keylen,
		     struct lmdb_key *k)
{
	if (keylen <= LMDB_KEY_DIRECT_MAX) {
		k->folded = false;
		k->val.mv_data = (void *)key;
		k->val.mv_size = keylen;
		return;
	}
	k->folded = true;
	memcpy(k->buf, key, LMDB_KEY_DIRECT_MAX);
	sha256(key, keylen, k->buf + LMDB_KEY_DIRECT_MAX);
	k->val.mv_data = k->buf;
	k->val.mv_size = LMDB_KEY_FOLDED_LEN;
}

/*
 * Splits a stored entry into the caller's key and the record. Returns false
 * for anything we did not write: bad record, bad key size, folded key
 * whose appended original is missing or too long.
 */
static bool entry_decode(const MDB_val *k, const MDB_val *v,
			 const unsigned char **okey, size_t *okeylen,
			 struct store_rec *rec)
{
	const unsigned char *vb = v->mv_data;
	size_t extra;

	if (k->mv_size == 0 || k->mv_size > LMDB_KEY_FOLDED_LEN ||
	    v->mv_size < STORE_REC_SIZE)
		return false;
	extra = v->mv_size - STORE_REC_SIZE;
	if (k->mv_size <= LMDB_KEY_DIRECT_MAX) {
		if (extra != 0)
			return false;
		*okey = k->mv_data;
		*okeylen = k->mv_size;
	} else {
		if (k->mv_size != LMDB_KEY_FOLDED_LEN ||
		    extra <= LMDB_KEY_DIRECT_MAX || extra > STORE_KEY_MAX)
			return false;
		*okey = vb + STORE_REC_SIZE;
		*okeylen = extra;
	}
	return store_rec_decode(vb, STORE_REC_SIZE, rec);
}

/* Decodes the entry found under k for the caller's key. */
static bool entry_match(const struct lmdb_key *k, const MDB_val *v,
			const unsigned char *key, size_t keylen,
			struct store_rec *rec)
{
	const unsigned char *okey;
	size_t okeylen;

	if (!entry_decode(&k->val, v, &okey, &okeylen, rec))
		return false;
	return okeylen == keylen && memcmp(okey, key, keylen) == 0;
}

static int entry_put(MDB_txn *txn, MDB_dbi dbi, const struct lmdb_key *k,
		     const unsigned char *key, size_t keylen,
		     const struct store_rec *rec)
{
	unsigned char buf[STORE_REC_SIZE + STORE_KEY_MAX];
	MDB_val kv = k->val, v = {.mv_size = STORE_REC_SIZE, .mv_data = buf};

	store_rec_encode(rec, buf);
	if (k->folded) {
		memcpy(buf + STORE_REC_SIZE, key, keylen);
		v.mv_size += keylen;
	}
	return mdb_put(txn, dbi, &kv, &v, 0);
}

/* ---------------------------------------------------------------- */
/* Errors, transactions, map size. */

static void set_err(char *err, size_t errsize, const char *what, int rc)
{
	if (err != NULL && errsize > 0)
		snprintf(err, errsize, "lmdb %s: %s", what, mdb_strerror(rc));
}

static void set_msg(char *err, size_t errsize, const char *msg)
{
	if (err != NULL && errsize > 0)
		snprintf(err, errsize, "lmdb: %s", msg);
}

static int64_t clock_now(const struct lmdb_store *s)
{
	if (s->clock != NULL)
		return s->clock(s->clock_arg);
	return (int64_t)time(NULL);
}

static bool table_ok(enum store_table t)
{
	return (unsigned)t < STORE_NTABLES;
}

static void reader_check(struct lmdb_store *s)
{
	int dead;
	struct timespec ts;

	(void)mdb_reader_check(s->env, &dead);
	clock_gettime(CLOCK_MONOTONIC, &ts);
	s->last_reader_check = ts.tv_sec;
}

/* mdb_txn_begin() that adopts a map grown by another process and clears
 * stale reader slots when the table is full. */
static int txn_begin(struct lmdb_store *s, unsigned flags, MDB_txn **txn)
{
	int rc;

	for (int i = 0;; i++) {
		rc = mdb_txn_begin(s->env, NULL, flags, txn);
		if (rc == 0 || i >= LMDB_BEGIN_RETRIES)
			break;
		if (rc == MDB_MAP_RESIZED) {
			/* Only safe with no transaction of ours open. */
			if (s->nreaders > 0 || s->wtxn != NULL)
				break;
			rc = mdb_env_set_mapsize(s->env, 0);
			if (rc != 0)
				break;
		} else if (rc == MDB_READERS_FULL) {
			int dead = 0;

			if (mdb_reader_check(s->env, &dead) != 0 || dead == 0)
				break;
		} else {
			break;
		}
	}
	if (rc != 0)
		*txn = NULL;
	return rc;
}

static int read_begin(struct lmdb_store *s, MDB_txn **txn)
{
	int rc = txn_begin(s, MDB_RDONLY, txn);

	if (rc == 0)
		s->nreaders++;
	return rc;
}

static void read_end(struct lmdb_store *s, MDB_txn *txn)
{
	mdb_txn_abort(txn);
	s->nreaders--;
}

/* Doubles the map. Only with no transaction of ours open: resizing remaps
 * the file under any reader. */
/*
 * Allocates the file's blocks up to size. With MDB_WRITEMAP, LMDB writes
 * through a shared map of a sparse file: on a full file system the first
 * write to a hole is a SIGBUS that kills the daemon. Reserving the blocks
 * turns a full disk into an error at open or at growth instead. Returns 0
 * or an errno value.
 */
static int reserve_file(int fd, off_t size)
{
	int rc;
	do
		rc = posix_fallocate(fd, 0, size);
	while (rc == EINTR);
	return rc;
}

/* Reserves the blocks of the data file (the map), through LMDB's own
 * descriptor. */
static int reserve_store(struct lmdb_store *s, size_t mapsize,
			 const char *path, char *err, size_t errsize)
{
	mdb_filehandle_t fd;
	int rc = mdb_env_get_fd(s->env, &fd);
	if (rc == 0)
		rc = reserve_file(fd, (off_t)mapsize);
	if (rc != 0)
		snprintf(err, errsize,
			 "%s: cannot reserve %zu MiB of disk for the store: %s",
			 path, mapsize >> 20, strerror(rc));
	return rc;
}

/* Size reserved for the lock file: LMDB's reader table for its default
 * 126 readers is about 8 KiB; a larger file just holds more slots. */
#define LMDB_LOCK_RESERVE ((off_t)64 << 10)

/*
 * Reserves the lock file's blocks before LMDB opens it (it is a shared
 * map too: a write to a hole on a full disk is a SIGBUS). This must happen
 * before mdb_env_open(): LMDB holds fcntl() locks on that file, and
 * closing any other descriptor of it in this process would drop them
 * (POSIX), letting another process reset the shared lock table.
 */
static int reserve_lock_file(const char *path, char *err, size_t errsize)
{
	char lock[4096];
	struct stat st;
	snprintf(lock, sizeof(lock), "%s/lock.mdb", path);
	int fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, LMDB_FILE_MODE);
	if (fd < 0)
		return 0; /* LMDB reports it with its own words */
	int rc = 0;
	if (fstat(fd, &st) == 0 && st.st_size < LMDB_LOCK_RESERVE)
		rc = reserve_file(fd, LMDB_LOCK_RESERVE);
	else if (st.st_size > 0)
		rc = reserve_file(fd, st.st_size);
	close(fd);
	if (rc != 0)
		snprintf(err, errsize,
			 "%s: cannot reserve the lock file's disk: %s", path,
			 strerror(rc));
	return rc;
}

/* Room for the lock file and LMDB's first pages besides the map. */
#define LMDB_SPACE_MARGIN ((size_t)1 << 20)

/*
 * Before LMDB creates or maps anything: is there disk for the part of the
 * map not yet allocated, plus a margin? mdb_env_open() itself writes
 * through maps of sparse files (the lock file, a new data file), which on
 * a full file system is a SIGBUS, not an error; reserve_store() closes the
 * rest of the gap right after the open.
 */
static int space_check(const char *path, size_t mapsize, char *err,
		       size_t errsize)
{
	char data[4096];
	struct stat st;
	struct statvfs vfs;
	uint64_t have = 0;

	snprintf(data, sizeof(data), "%s/data.mdb", path);
	if (stat(data, &st) == 0)
		have = (uint64_t)st.st_blocks * 512;
	if (statvfs(path, &vfs) != 0)
		return 0; /* cannot tell: let the open decide */
	uint64_t need = (mapsize > have ? mapsize - have : 0) +
			LMDB_SPACE_MARGIN;
	uint64_t avail = (uint64_t)vfs.f_bavail * vfs.f_frsize;
	if (avail >= need)
		return 0;
	snprintf(err, errsize,
		 "%s: cannot reserve %zu MiB of disk for the store: %s", path,
		 mapsize >> 20, strerror(ENOSPC));
	return -1;
}

static int grow_map(struct lmdb_store *s)
{
	MDB_envinfo info;
	size_t next;
	int rc;

	if (s->nreaders > 0 || s->wtxn != NULL)
		return MDB_MAP_FULL;
	rc = mdb_env_info(s->env, &info);
	if (rc != 0)
		return rc;
	if (info.me_mapsize >= LMDB_MAPSIZE_MAX)
		return MDB_MAP_FULL;
	next = info.me_mapsize > LMDB_MAPSIZE_MAX / 2 ? LMDB_MAPSIZE_MAX
						      : info.me_mapsize * 2;
	/* No blocks for the larger map (disk full): stay full, which fails
	 * the operations with an error, never a SIGBUS. */
	mdb_filehandle_t fd;
	if (mdb_env_get_fd(s->env, &fd) != 0 ||
	    reserve_file(fd, (off_t)next) != 0)
		return MDB_MAP_FULL;
	return mdb_env_set_mapsize(s->env, next);
}

/* ---------------------------------------------------------------- */
/* The queue of writes and the group commit. */

static void op_fail(struct lmdb_op *op, const char *what, int rc)
{
	op->failed = true;
	set_err(op->err, sizeof(op->err), what, rc);
}

/* Applies one write inside txn. Returns an LMDB code; on failure the
 * transaction must be aborted (LMDB marks it broken). */
static int op_apply(struct lmdb_store *s, MDB_txn *txn, struct lmdb_op *op)
{
	MDB_dbi dbi = s->dbi[op->table];
	struct lmdb_key k;
	MDB_val kv, v;
	struct store_rec old, rec;
	bool exists = false, valid = false;
	int rc;

	key_make(op->key, op->keylen, &k);
	kv = k.val;
	rc = mdb_get(txn, dbi, &kv, &v);
	if (rc == 0) {
		exists = true;
		valid = entry_match(&k, &v, op->key, op->keylen, &old);
		if (!valid)
			s->errors++;
	} else if (rc != MDB_NOTFOUND) {
		return rc;
	}

	switch (op->kind) {
	case LMDB_OP_RMW: {
		bool live = valid && !(old.expires < op->now);
		enum store_verdict vd;

		if (live)
			rec = old;
		else
			memset(&rec, 0, sizeof(rec));
		vd = op->fn(op->fn_arg, live ? &old : NULL, &rec);
		if (vd == STORE_WRITE)
			return entry_put(txn, dbi, &k, op->key, op->keylen,
					 &rec);
		if (vd == STORE_DELETE && exists)
			return mdb_del(txn, dbi, &kv, NULL);
		if (vd != STORE_KEEP && vd != STORE_DELETE)
			return EINVAL;
		return 0;
	}
	case LMDB_OP_PUT:
		return entry_put(txn, dbi, &k, op->key, op->keylen, &op->rec);
	case LMDB_OP_DEL:
		if (op->found_out != NULL)
			*op->found_out = exists;
		return exists ? mdb_del(txn, dbi, &kv, NULL) : 0;
	}
	return EINVAL;
}

static void batch_abort(struct lmdb_store *s)
{
	if (s->wtxn != NULL) {
		mdb_txn_abort(s->wtxn);
		s->wtxn = NULL;
	}
}

/* Fails every operation of the current batch and closes the batch. */
static void batch_fail(struct lmdb_store *s, const char *what, int rc)
{
	batch_abort(s);
	for (size_t i = s->batch_start; i < s->nops; i++)
		if (!s->ops[i].failed)
			op_fail(&s->ops[i], what, rc);
	s->batch_start = s->nops;
}

/*
 * (Re)runs the current batch in a fresh write transaction, growing the map
 * on MDB_MAP_FULL. An operation that fails on its own is marked failed and
 * the others are replayed without it. Returns 0 with s->wtxn open, or the
 * code of a failure to begin a transaction (s->wtxn NULL).
 */
static int batch_replay(struct lmdb_store *s)
{
	int grows = 0;

	for (;;) {
		size_t i;
		int rc;

		batch_abort(s);
		rc = txn_begin(s, 0, &s->wtxn);
		if (rc != 0)
			return rc;
		for (i = s->batch_start; i < s->nops; i++) {
			if (s->ops[i].failed)
				continue;
			rc = op_apply(s, s->wtxn, &s->ops[i]);
			if (rc != 0)
				break;
		}
		if (i == s->nops)
			return 0;
		batch_abort(s);
		if (rc == MDB_MAP_FULL && grows < LMDB_GROW_RETRIES &&
		    grow_map(s) == 0) {
			grows++;
			continue;
		}
		op_fail(&s->ops[i], "write", rc);
	}
}

static void arm_sync(struct lmdb_store *s)
{
	struct timeval tv = {.tv_sec = LMDB_SYNC_INTERVAL, .tv_usec = 0};

	s->dirty = true;
	if (s->sync_ev != NULL && !evtimer_pending(s->sync_ev, NULL))
		evtimer_add(s->sync_ev, &tv);
}

/* Commits the current batch; its operations become final. */
static void batch_commit(struct lmdb_store *s)
{
	int grows = 0, rc = 0;

	if (s->batch_start == s->nops && s->wtxn == NULL)
		return;
	if (s->wtxn == NULL) {
		bool any = false;

		for (size_t i = s->batch_start; i < s->nops; i++)
			any = any || !s->ops[i].failed;
		if (!any) {
			s->batch_start = s->nops;
			return;
		}
		rc = batch_replay(s);
		if (rc != 0) {
			batch_fail(s, "begin", rc);
			return;
		}
	}
	for (;;) {
		rc = mdb_txn_commit(s->wtxn);
		s->wtxn = NULL; /* freed by commit, even on failure */
		if (rc == MDB_MAP_FULL && grows < LMDB_GROW_RETRIES &&
		    grow_map(s) == 0) {
			grows++;
			rc = batch_replay(s);
			if (rc == 0)
				continue;
		}
		break;
	}
	if (rc != 0) {
		batch_fail(s, "commit", rc);
		return;
	}
	s->batch_start = s->nops;
	arm_sync(s);
}

/* Appends an operation to the queue; returns it (valid until the next
 * append). */
static struct lmdb_op *op_push(struct lmdb_store *s)
{
	struct lmdb_op *op;

	if (s->nops == s->capops) {
		if (s->ops == NULL && s->spare != NULL) {
			s->ops = s->spare;
			s->capops = s->capspare;
			s->spare = NULL;
			s->capspare = 0;
		} else {
			s->capops = s->capops == 0 ? 16 : s->capops * 2;
			s->ops =
			    xreallocarray(s->ops, s->capops, sizeof(*s->ops));
		}
	}
	op = &s->ops[s->nops++];
	memset(op, 0, offsetof(struct lmdb_op, key));
	op->err[0] = '\0';
	return op;
}

/* Runs the newest queued operation inside the turn's transaction. */
static void batch_add(struct lmdb_store *s)
{
	struct lmdb_op *op = &s->ops[s->nops - 1];
	int rc;

	if (op->failed) /* refused before it reached LMDB */
		return;
	if (s->nops - 1 - s->batch_start >= LMDB_GROUP_MAX) {
		/* Commit what is queued without the new operation. */
		s->nops--;
		batch_commit(s);
		s->nops++;
	}
	if (s->wtxn != NULL) {
		rc = op_apply(s, s->wtxn, op);
		if (rc == 0)
			return;
	}
	rc = batch_replay(s);
	if (rc != 0)
		batch_fail(s, "begin", rc);
}

/* Commits the pending group and runs every queued `done`. Re-entrant: a
 * `done` may queue new operations, which form the next group. */
static void group_finish(struct lmdb_store *s)
{
	struct lmdb_op *ops;
	size_t n, cap;

	if (s->nops == 0 && s->wtxn == NULL)
		return;
	batch_commit(s);
	ops = s->ops;
	n = s->nops;
	cap = s->capops;
	s->ops = NULL;
	s->nops = s->capops = s->batch_start = 0;
	for (size_t i = 0; i < n; i++) {
		if (ops[i].failed)
			s->errors++;
		if (ops[i].done != NULL)
			ops[i].done(ops[i].done_arg, ops[i].failed ? -1 : 0,
				    ops[i].failed ? ops[i].err : "");
	}
	if (s->spare == NULL) {
		s->spare = ops;
		s->capspare = cap;
	} else {
		free(ops);
	}
}

/* Commits until nothing is pending: a `done` may queue operations that
 * open the next write transaction, and a synchronous caller about to begin
 * its own would wait forever on the lock this thread holds. Engine chains
 * are short (a few operations), so this ends. */
static void group_drain(struct lmdb_store *s)
{
	while (s->nops > 0 || s->wtxn != NULL)
		group_finish(s);
}

static void commit_cb(evutil_socket_t fd, short what, void *arg)
{
	struct lmdb_store *s = arg;

	(void)fd;
	(void)what;
	s->commit_scheduled = false;
	group_finish(s);
}

static void sync_cb(evutil_socket_t fd, short what, void *arg)
{
	struct lmdb_store *s = arg;
	struct timespec ts;

	(void)fd;
	(void)what;
	if (s->dirty) {
		s->dirty = false;
		if (mdb_env_sync(s->env, 1) != 0)
			s->errors++;
	}
	clock_gettime(CLOCK_MONOTONIC, &ts);
	if (ts.tv_sec - s->last_reader_check >= LMDB_READER_CHECK_INTERVAL)
		reader_check(s);
}

/* Queues one write and, without an event loop, completes it at once. */
static struct lmdb_op *op_queue(struct lmdb_store *s, enum lmdb_op_kind kind,
				enum store_table t, const void *key,
				size_t keylen)
{
	struct lmdb_op *op = op_push(s);

	op->kind = kind;
	op->table = t;
	if (s->readonly) {
		set_msg(op->err, sizeof(op->err), "store opened read-only");
		op->failed = true;
	} else if (!table_ok(t) || key == NULL || keylen == 0 ||
		   keylen > STORE_KEY_MAX) {
		set_msg(op->err, sizeof(op->err), "invalid table or key");
		op->failed = true;
	} else {
		op->keylen = keylen;
		memcpy(op->key, key, keylen);
	}
	return op;
}

/* ---------------------------------------------------------------- */
/* store_ops. */

static void lmdb_rmw(struct store *st, enum store_table t, const void *key,
		     size_t keylen, int64_t now, store_rmw_fn fn, void *fn_arg,
		     store_done_fn done, void *done_arg)
{
	struct lmdb_store *s = (struct lmdb_store *)st;
	struct lmdb_op *op = op_queue(s, LMDB_OP_RMW, t, key, keylen);

	op->now = now;
	op->fn = fn;
	op->fn_arg = fn_arg;
	op->done = done;
	op->done_arg = done_arg;
	if (fn == NULL && !op->failed) {
		set_msg(op->err, sizeof(op->err), "no rmw function");
		op->failed = true;
	}
	batch_add(s);
	if (s->evbase == NULL) {
		group_finish(s);
	} else if (!s->commit_scheduled) {
		s->commit_scheduled = true;
		event_active(s->commit_ev, EV_TIMEOUT, 1);
	}
}

/* Outcome of a synchronous write, filled by its `done`. */
struct sync_result {
	int status;
	char *err;
	size_t errsize;
};

static void sync_done(void *arg, int status, const char *err)
{
	struct sync_result *r = arg;

	r->status = status;
	if (status != 0 && r->err != NULL && r->errsize > 0)
		snprintf(r->err, r->errsize, "%s", err);
}

/* Runs a put or del to completion, after the pending group. */
static int sync_write(struct lmdb_store *s, enum lmdb_op_kind kind,
		      enum store_table t, const void *key, size_t keylen,
		      const struct store_rec *rec, bool *found, char *err,
		      size_t errsize)
{
	struct sync_result r = {.status = -1, .err = err, .errsize = errsize};
	struct lmdb_op *op;

	group_drain(s);
	op = op_queue(s, kind, t, key, keylen);
	if (rec != NULL)
		op->rec = *rec;
	op->found_out = found;
	op->done = sync_done;
	op->done_arg = &r;
	batch_add(s);
	group_drain(s);
	return r.status;
}

static int lmdb_put(struct store *st, enum store_table t, const void *key,
		    size_t keylen, const struct store_rec *rec, char *err,
		    size_t errsize)
{
	struct lmdb_store *s = (struct lmdb_store *)st;

	if (rec == NULL) {
		set_msg(err, errsize, "no record");
		return -1;
	}
	return sync_write(s, LMDB_OP_PUT, t, key, keylen, rec, NULL, err,
			  errsize);
}

static int lmdb_del(struct store *st, enum store_table t, const void *key,
		    size_t keylen, bool *found, char *err, size_t errsize)
{
	struct lmdb_store *s = (struct lmdb_store *)st;
	bool f = false;
	int rc;

	rc = sync_write(s, LMDB_OP_DEL, t, key, keylen, NULL, &f, err, errsize);
	if (found != NULL)
		*found = rc == 0 && f;
	return rc;
}

static int lmdb_get(struct store *st, enum store_table t, const void *key,
		    size_t keylen, struct store_rec *out, bool *found,
		    char *err, size_t errsize)
{
	struct lmdb_store *s = (struct lmdb_store *)st;
	MDB_txn *txn = s->wtxn;
	struct lmdb_key k;
	MDB_val kv, v;
	struct store_rec rec;
	int rc;

	*found = false;
	if (!table_ok(t) || key == NULL || keylen == 0 ||
	    keylen > STORE_KEY_MAX) {
		set_msg(err, errsize, "invalid table or key");
		s->errors++;
		return -1;
	}
	if (!s->have_dbi[t])
		return 0;
	/* Inside a group, read through it: sees this turn's writes. */
	if (txn == NULL) {
		rc = read_begin(s, &txn);
		if (rc != 0) {
			set_err(err, errsize, "begin", rc);
			s->errors++;
			return -1;
		}
	}
	key_make(key, keylen, &k);
	kv = k.val;
	rc = mdb_get(txn, s->dbi[t], &kv, &v);
	if (rc == 0) {
		if (!entry_match(&k, &v, key, keylen, &rec))
			s->errors++;
		else if (!(rec.expires < clock_now(s))) {
			*out = rec;
			*found = true;
		}
	}
	if (txn != s->wtxn)
		read_end(s, txn);
	if (rc != 0 && rc != MDB_NOTFOUND) {
		set_err(err, errsize, "get", rc);
		s->errors++;
		return -1;
	}
	return 0;
}

static int lmdb_foreach(struct store *st, enum store_table t, store_visit_fn fn,
			void *arg, char *err, size_t errsize)
{
	struct lmdb_store *s = (struct lmdb_store *)st;
	MDB_txn *txn;
	MDB_cursor *cur;
	MDB_val k, v;
	MDB_cursor_op op = MDB_FIRST;
	int64_t now = clock_now(s);
	int rc;

	if (!table_ok(t) || fn == NULL) {
		set_msg(err, errsize, "invalid table");
		s->errors++;
		return -1;
	}
	if (!s->have_dbi[t])
		return 0;
	rc = read_begin(s, &txn);
	if (rc != 0) {
		set_err(err, errsize, "begin", rc);
		s->errors++;
		return -1;
	}
	rc = mdb_cursor_open(txn, s->dbi[t], &cur);
	if (rc != 0) {
		read_end(s, txn);
		set_err(err, errsize, "cursor", rc);
		s->errors++;
		return -1;
	}
	while ((rc = mdb_cursor_get(cur, &k, &v, op)) == 0) {
		const unsigned char *okey;
		size_t okeylen;
		struct store_rec rec;

		op = MDB_NEXT;
		if (!entry_decode(&k, &v, &okey, &okeylen, &rec)) {
			s->errors++;
			continue;
		}
		if (rec.expires < now)
			continue;
		if (fn(arg, okey, okeylen, &rec) != 0)
			break;
	}
	mdb_cursor_close(cur);
	read_end(s, txn);
	if (rc != 0 && rc != MDB_NOTFOUND) {
		set_err(err, errsize, "cursor", rc);
		s->errors++;
		return -1;
	}
	return 0;
}

static int lmdb_stats(struct store *st, struct store_stats *out, char *err,
		      size_t errsize)
{
	struct lmdb_store *s = (struct lmdb_store *)st;
	MDB_txn *txn;
	MDB_envinfo info;
	MDB_stat ms;
	int rc;

	memset(out, 0, sizeof(*out));
	rc = read_begin(s, &txn);
	if (rc != 0) {
		set_err(err, errsize, "begin", rc);
		s->errors++;
		return -1;
	}
	for (int t = 0; t < STORE_NTABLES && rc == 0; t++) {
		if (!s->have_dbi[t])
			continue;
		rc = mdb_stat(txn, s->dbi[t], &ms);
		if (rc == 0)
			out->records[t] = ms.ms_entries;
	}
	if (rc == 0)
		rc = mdb_env_info(s->env, &info);
	if (rc == 0)
		rc = mdb_env_stat(s->env, &ms);
	read_end(s, txn);
	if (rc != 0) {
		set_err(err, errsize, "stat", rc);
		s->errors++;
		return -1;
	}
	out->bytes = (info.me_last_pgno + 1) * (size_t)ms.ms_psize;
	out->expired = s->expired;
	out->errors = s->errors;
	return 0;
}

/* One store_expire() call: what it may still do and where it stands. */
struct expire_run {
	int64_t now;
	size_t want;  /* deletions still allowed */
	size_t scan;  /* records that may still be examined */
	bool sized;   /* scan already capped by the number of records */
	bool wrapped; /* went round every table: nothing more to find */
	enum store_table table;
	size_t keylen; /* resume after this key of table; 0: at its start */
	unsigned char key[LMDB_KEY_FOLDED_LEN];
};

/* Reads the shared cursor; anything unreadable means "from the start". */
static int cursor_load(struct lmdb_store *s, MDB_txn *txn, struct expire_run *r)
{
	MDB_val k = {.mv_size = sizeof(lmdb_cursor_key) - 1,
		     .mv_data = (void *)lmdb_cursor_key};
	MDB_val v;
	const unsigned char *b;
	int rc = mdb_get(txn, s->main_dbi, &k, &v);

	r->table = STORE_TRIPLETS;
	r->keylen = 0;
	if (rc == MDB_NOTFOUND)
		return 0;
	if (rc != 0)
		return rc;
	b = v.mv_data;
	if (v.mv_size < 2 || b[0] != LMDB_CURSOR_VERSION ||
	    b[1] >= STORE_NTABLES || v.mv_size - 2 > sizeof(r->key))
		return 0;
	r->table = (enum store_table)b[1];
	r->keylen = v.mv_size - 2;
	memcpy(r->key, b + 2, r->keylen);
	return 0;
}

static int cursor_save(struct lmdb_store *s, MDB_txn *txn,
		       const struct expire_run *r)
{
	unsigned char b[2 + LMDB_KEY_FOLDED_LEN];
	MDB_val k = {.mv_size = sizeof(lmdb_cursor_key) - 1,
		     .mv_data = (void *)lmdb_cursor_key};
	MDB_val v = {.mv_size = 2 + r->keylen, .mv_data = b};

	b[0] = LMDB_CURSOR_VERSION;
	b[1] = (unsigned char)r->table;
	memcpy(b + 2, r->key, r->keylen);
	return mdb_put(txn, s->main_dbi, &k, &v, 0);
}

/* Sets *total to the number of records in all tables. */
static int count_records(struct lmdb_store *s, MDB_txn *txn, size_t *total)
{
	MDB_stat ms;

	*total = 0;
	for (int t = 0; t < STORE_NTABLES; t++) {
		int rc = mdb_stat(txn, s->dbi[t], &ms);

		if (rc != 0)
			return rc;
		*total += ms.ms_entries;
	}
	return 0;
}

/*
 * One write transaction of an expiry call: examines at most
 * LMDB_EXPIRE_TXN_SCAN records from where the run stands. Works on a copy
 * of the run, written back only once the transaction is committed, so a
 * retry after MDB_MAP_FULL starts from the same place.
 */
static int expire_pass(struct lmdb_store *s, struct expire_run *run)
{
	struct expire_run r = *run;
	MDB_txn *txn;
	MDB_cursor *cur = NULL;
	MDB_val k, v;
	MDB_cursor_op op;
	size_t limit, examined = 0, n = 0;
	int crossings = 0, rc;
	bool skip_equal;

	rc = txn_begin(s, 0, &txn);
	if (rc != 0)
		return rc;
	s->wtxn = txn; /* so that grow_map refuses while it is open */
	rc = cursor_load(s, txn, &r);
	if (rc == 0 && !r.sized) {
		/* Each record at most once per call, even when wrapping. */
		size_t total = 0;

		rc = count_records(s, txn, &total);
		if (rc == 0 && r.scan > total)
			r.scan = total;
		r.sized = true;
	}
	limit = r.scan < LMDB_EXPIRE_TXN_SCAN ? r.scan : LMDB_EXPIRE_TXN_SCAN;

	if (rc == 0)
		rc = mdb_cursor_open(txn, s->dbi[r.table], &cur);
	if (r.keylen > 0) {
		op = MDB_SET_RANGE;
		k.mv_data = r.key;
		k.mv_size = r.keylen;
		skip_equal = true;
	} else {
		op = MDB_FIRST;
		skip_equal = false;
	}
	while (rc == 0 && examined < limit && n < r.want) {
		struct store_rec rec;
		const unsigned char *okey;
		size_t okeylen;

		rc = mdb_cursor_get(cur, &k, &v, op);
		if (rc == MDB_NOTFOUND) {
			/* End of this table: on to the start of the next. */
			if (++crossings > STORE_NTABLES) {
				r.wrapped = true;
				rc = 0;
				break;
			}
			mdb_cursor_close(cur);
			cur = NULL;
			r.table = (r.table + 1) % STORE_NTABLES;
			r.keylen = 0;
			rc = mdb_cursor_open(txn, s->dbi[r.table], &cur);
			op = MDB_FIRST;
			skip_equal = false;
			continue;
		}
		if (rc != 0)
			break;
		op = MDB_NEXT;
		if (skip_equal) {
			skip_equal = false;
			if (k.mv_size == r.keylen &&
			    memcmp(k.mv_data, r.key, r.keylen) == 0)
				continue;
		}
		examined++;
		if (k.mv_size <= sizeof(r.key)) {
			memcpy(r.key, k.mv_data, k.mv_size);
			r.keylen = k.mv_size;
		}
		if (!entry_decode(&k, &v, &okey, &okeylen, &rec)) {
			s->errors++;
		} else if (!(rec.expires < r.now)) {
			continue;
		}
		/* After a delete LMDB's MDB_NEXT yields the following key. */
		rc = mdb_cursor_del(cur, 0);
		if (rc == 0)
			n++;
	}
	if (cur != NULL)
		mdb_cursor_close(cur);
	if (rc == 0 && (examined > 0 || crossings > 0))
		rc = cursor_save(s, txn, &r);
	s->wtxn = NULL;
	if (rc != 0) {
		mdb_txn_abort(txn);
		return rc;
	}
	rc = mdb_txn_commit(txn);
	if (rc != 0)
		return rc;
	if (n > 0)
		arm_sync(s);
	r.want -= n;
	r.scan -= examined;
	if (examined == 0)
		r.wrapped = true; /* nothing left to look at */
	s->expired += n;
	*run = r;
	return 0;
}

static int lmdb_expire(struct store *st, int64_t now, size_t max,
		       size_t *removed, char *err, size_t errsize)
{
	struct lmdb_store *s = (struct lmdb_store *)st;
	struct expire_run run = {.now = now, .want = max};
	int rc = 0, grows = 0;

	*removed = 0;
	if (s->readonly) {
		set_msg(err, errsize, "store opened read-only");
		s->errors++;
		return -1;
	}
	if (max == 0)
		return 0;
	group_drain(s);
	run.scan = max > SIZE_MAX / LMDB_EXPIRE_SCAN_RATIO
		       ? SIZE_MAX
		       : max * LMDB_EXPIRE_SCAN_RATIO;
	if (run.scan < LMDB_EXPIRE_SCAN_MIN)
		run.scan = LMDB_EXPIRE_SCAN_MIN;
	/* Several short transactions rather than one long one: other
	 * processes get the writer lock in between. */
	while (run.want > 0 && run.scan > 0 && !run.wrapped) {
		rc = expire_pass(s, &run);
		if (rc == MDB_MAP_FULL && grows < LMDB_GROW_RETRIES &&
		    grow_map(s) == 0) {
			grows++;
			continue;
		}
		if (rc != 0)
			break;
	}
	*removed = max - run.want;
	if (rc != 0) {
		set_err(err, errsize, "expire", rc);
		s->errors++;
		return -1;
	}
	return 0;
}

static int lmdb_flush(struct store *st, char *err, size_t errsize)
{
	struct lmdb_store *s = (struct lmdb_store *)st;
	int rc;

	group_drain(s);
	if (s->readonly)
		return 0;
	rc = mdb_env_sync(s->env, 1);
	if (rc != 0) {
		set_err(err, errsize, "sync", rc);
		s->errors++;
		return -1;
	}
	s->dirty = false;
	return 0;
}

static void lmdb_close(struct store *st)
{
	struct lmdb_store *s = (struct lmdb_store *)st;

	group_drain(s);
	if (!s->readonly) {
		if (s->dirty)
			(void)mdb_env_sync(s->env, 1);
	}
	if (s->commit_ev != NULL)
		event_free(s->commit_ev);
	if (s->sync_ev != NULL)
		event_free(s->sync_ev);
	mdb_env_close(s->env);
	free(s->ops);
	free(s->spare);
	free(s);
}

static const struct store_ops lmdb_ops = {
    .name = "lmdb",
    .close = lmdb_close,
    .rmw = lmdb_rmw,
    .get = lmdb_get,
    .put = lmdb_put,
    .del = lmdb_del,
    .foreach = lmdb_foreach,
    .stats = lmdb_stats,
    .expire = lmdb_expire,
    .flush = lmdb_flush,
};

/* ---------------------------------------------------------------- */
/* Opening. */

static int open_tables(struct lmdb_store *s, char *err, size_t errsize)
{
	MDB_txn *txn;
	int rc;

	rc = txn_begin(s, s->readonly ? MDB_RDONLY : 0, &txn);
	if (rc != 0) {
		set_err(err, errsize, "begin", rc);
		return -1;
	}
	rc = mdb_dbi_open(txn, NULL, 0, &s->main_dbi);
	if (rc != 0) {
		mdb_txn_abort(txn);
		set_err(err, errsize, "main database", rc);
		return -1;
	}
	for (int t = 0; t < STORE_NTABLES; t++) {
		rc = mdb_dbi_open(txn, store_table_name(t),
				  s->readonly ? 0 : MDB_CREATE, &s->dbi[t]);
		if (rc == MDB_NOTFOUND && s->readonly) {
			/* Never written yet: an empty table. */
			s->have_dbi[t] = false;
			continue;
		}
		if (rc != 0) {
			mdb_txn_abort(txn);
			set_err(err, errsize, store_table_name(t), rc);
			return -1;
		}
		s->have_dbi[t] = true;
	}
	/* Committing keeps the handles, even for a read-only transaction. */
	rc = mdb_txn_commit(txn);
	if (rc != 0) {
		set_err(err, errsize, "commit", rc);
		return -1;
	}
	return 0;
}

static int make_dir(const char *path, char *err, size_t errsize)
{
	struct stat st;

	if (mkdir(path, LMDB_DIR_MODE) != 0 && errno != EEXIST) {
		set_err(err, errsize, "mkdir", errno);
		return -1;
	}
	if (stat(path, &st) != 0) {
		set_err(err, errsize, "stat", errno);
		return -1;
	}
	if (!S_ISDIR(st.st_mode)) {
		set_msg(err, errsize, "store path is not a directory");
		return -1;
	}
	return 0;
}

struct store *store_lmdb_open(struct event_base *base,
			      const struct lmdb_config *cfg, char *err,
			      size_t errsize)
{
	struct lmdb_store *s;
	unsigned flags = MDB_NOTLS;
	size_t mapsize;
	int rc;

	if (cfg == NULL || cfg->path == NULL || cfg->path[0] == '\0') {
		set_msg(err, errsize, "no store path");
		return NULL;
	}
	if (!cfg->readonly && make_dir(cfg->path, err, errsize) != 0)
		return NULL;

	s = xcalloc(1, sizeof(*s));
	s->base.ops = &lmdb_ops;
	s->readonly = cfg->readonly;
	s->clock = cfg->clock;
	s->clock_arg = cfg->clock_arg;
	s->evbase = base;
	mapsize = cfg->mapsize == 0 ? LMDB_DEFAULT_MAPSIZE : cfg->mapsize;
	if (mapsize < LMDB_MAPSIZE_MIN)
		mapsize = LMDB_MAPSIZE_MIN;

	rc = mdb_env_create(&s->env);
	if (rc != 0) {
		set_err(err, errsize, "create", rc);
		free(s);
		return NULL;
	}
	if ((rc = mdb_env_set_maxdbs(s->env, STORE_NTABLES)) != 0 ||
	    (rc = mdb_env_set_maxreaders(s->env, LMDB_MAX_READERS)) != 0 ||
	    (rc = mdb_env_set_mapsize(s->env, mapsize)) != 0) {
		set_err(err, errsize, "setup", rc);
		goto fail;
	}
	if (mdb_env_get_maxkeysize(s->env) < LMDB_KEY_FOLDED_LEN) {
		set_msg(err, errsize, "LMDB built with too small a key size");
		goto fail;
	}
	if (cfg->readonly)
		flags |= MDB_RDONLY;
	flags |= cfg->sync ? MDB_NOMETASYNC : MDB_NOSYNC;
	/* Writers update the map in place instead of pwrite()ing each dirty
	 * page at commit: on the daemon's hot path this doubled throughput
	 * (bench: 43k -> 83k -> 101k decisions/s with sync=no). Every writer
	 * of an environment uses the same flags, as LMDB requires. No read
	 * ahead: records are small and accessed at random. */
	if (!cfg->readonly)
		flags |= MDB_WRITEMAP;
	flags |= MDB_NORDAHEAD;
	if (!cfg->readonly &&
	    (space_check(cfg->path, mapsize, err, errsize) != 0 ||
	     reserve_lock_file(cfg->path, err, errsize) != 0))
		goto fail;
	rc = mdb_env_open(s->env, cfg->path, flags, LMDB_FILE_MODE);
	if (rc != 0) {
		set_err(err, errsize, cfg->path, rc);
		goto fail;
	}
	if (!cfg->readonly) {
		MDB_envinfo info;
		if (mdb_env_info(s->env, &info) != 0 ||
		    reserve_store(s, info.me_mapsize, cfg->path, err,
				  errsize) != 0)
			goto fail;
	}
	reader_check(s);
	if (open_tables(s, err, errsize) != 0)
		goto fail;
	if (base != NULL) {
		s->commit_ev = event_new(base, -1, 0, commit_cb, s);
		if (!s->readonly)
			s->sync_ev = evtimer_new(base, sync_cb, s);
		if (s->commit_ev == NULL ||
		    (!s->readonly && s->sync_ev == NULL)) {
			set_msg(err, errsize, "cannot create events");
			goto fail;
		}
	}
	return &s->base;

fail:
	if (s->commit_ev != NULL)
		event_free(s->commit_ev);
	if (s->sync_ev != NULL)
		event_free(s->sync_ev);
	mdb_env_close(s->env);
	free(s);
	return NULL;
}
