/*
 * test_store_lmdb - the LMDB store (src/store/lmdb.c) against its contract.
 *
 * Every test works in its own mkdtemp() directory under /tmp with an
 * injected clock. Cross-process behaviour (group commit visibility,
 * concurrent writers, kill -9, a map grown by another process) is checked
 * with fork()ed children that open their own environment, as LMDB requires.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/event.h>
#include <lmdb.h>

#include "store/lmdb.h"
#include "store/store.h"

/* Records counted by the concurrency tests: 2 x this many increments. */
#define INCREMENTS 10000
/* Operations per loop turn in the group-commit tests. */
#define PER_TURN 100

/* ---------------------------------------------------------------- */
/* Fixtures. */

static int64_t fake_now = 1000000;

static int64_t fake_clock(void *arg)
{
	(void)arg;
	return fake_now;
}

struct fixture {
	char dir[64];
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	if (f == NULL)
		return -1;
	snprintf(f->dir, sizeof(f->dir), "/tmp/greyspf-store-XXXXXX");
	if (mkdtemp(f->dir) == NULL)
		return -1;
	/* The store creates the directory itself: start without it. */
	rmdir(f->dir);
	fake_now = 1000000;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	char p[128];

	snprintf(p, sizeof(p), "%s/data.mdb", f->dir);
	unlink(p);
	snprintf(p, sizeof(p), "%s/lock.mdb", f->dir);
	unlink(p);
	rmdir(f->dir);
	free(f);
	return 0;
}

static struct store *open_store(const char *dir, struct event_base *base,
				size_t mapsize, bool sync, bool readonly)
{
	struct lmdb_config cfg = {
	    .path = dir,
	    .mapsize = mapsize,
	    .sync = sync,
	    .readonly = readonly,
	    .clock = fake_clock,
	};
	char err[256] = "";
	struct store *s = store_lmdb_open(base, &cfg, err, sizeof(err));

	if (s == NULL)
		fprintf(stderr, "open %s: %s\n", dir, err);
	return s;
}

/* rmw functions. */

#define TTL 3600

static enum store_verdict fn_incr(void *arg, const struct store_rec *old,
				  struct store_rec *rec)
{
	int64_t now = arg == NULL ? fake_now : *(int64_t *)arg;

	if (old == NULL) {
		memset(rec, 0, sizeof(*rec));
		rec->first_seen = now;
	}
	rec->count++;
	rec->last_seen = now;
	rec->expires = now + TTL;
	return STORE_WRITE;
}

static enum store_verdict fn_keep(void *arg, const struct store_rec *old,
				  struct store_rec *rec)
{
	(void)arg;
	(void)old;
	rec->count = 999; /* must not be stored */
	return STORE_KEEP;
}

static enum store_verdict fn_delete(void *arg, const struct store_rec *old,
				    struct store_rec *rec)
{
	(void)arg;
	(void)old;
	(void)rec;
	return STORE_DELETE;
}

/* Records whether old was present and its count. */
struct seen {
	bool present;
	uint32_t count;
};

static enum store_verdict fn_observe(void *arg, const struct store_rec *old,
				     struct store_rec *rec)
{
	struct seen *s = arg;

	(void)rec;
	s->present = old != NULL;
	s->count = old != NULL ? old->count : 0;
	return STORE_KEEP;
}

/* done callbacks. */

struct dones {
	int ok;
	int failed;
	int order_mark; /* value of a marker when the first done ran */
};

static int marker;

static void done_count(void *arg, int status, const char *err)
{
	struct dones *d = arg;

	assert_non_null(err);
	if (d->ok + d->failed == 0)
		d->order_mark = marker;
	if (status == 0)
		d->ok++;
	else
		d->failed++;
}

static void rmw_sync(struct store *s, const char *key, store_rmw_fn fn,
		     void *arg)
{
	struct dones d = {0};

	store_rmw(s, STORE_TRIPLETS, key, strlen(key), fake_now, fn, arg,
		  done_count, &d);
	/* Without an event_base, done has run before store_rmw returns. */
	assert_int_equal(d.ok, 1);
}

static bool get_rec(struct store *s, enum store_table t, const char *key,
		    struct store_rec *out)
{
	char err[256];
	bool found = true;

	assert_int_equal(
	    store_get(s, t, key, strlen(key), out, &found, err, sizeof(err)),
	    0);
	return found;
}

static int count_visit(void *arg, const void *key, size_t keylen,
		       const struct store_rec *rec)
{
	(void)key;
	(void)keylen;
	(void)rec;
	(*(size_t *)arg)++;
	return 0;
}

static size_t count_live(struct store *s, enum store_table t)
{
	size_t n = 0;
	char err[256];

	assert_int_equal(store_foreach(s, t, count_visit, &n, err, sizeof(err)),
			 0);
	return n;
}

/* ---------------------------------------------------------------- */
/* Single-process behaviour. */

static void test_rmw_create_keep_delete(void **state)
{
	struct fixture *f = *state;
	struct store *s = open_store(f->dir, NULL, 0, false, false);
	struct store_rec r;
	struct stat st;
	char err[256];
	bool found;

	assert_non_null(s);
	assert_int_equal(stat(f->dir, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0750);
	assert_string_equal(s->ops->name, "lmdb");

	assert_false(get_rec(s, STORE_TRIPLETS, "k", &r));
	rmw_sync(s, "k", fn_incr, NULL);
	assert_true(get_rec(s, STORE_TRIPLETS, "k", &r));
	assert_int_equal(r.count, 1);
	assert_int_equal(r.first_seen, fake_now);
	assert_int_equal(r.expires, fake_now + TTL);

	fake_now += 10;
	rmw_sync(s, "k", fn_incr, NULL);
	assert_true(get_rec(s, STORE_TRIPLETS, "k", &r));
	assert_int_equal(r.count, 2);
	assert_int_equal(r.first_seen, fake_now - 10);
	assert_int_equal(r.last_seen, fake_now);

	rmw_sync(s, "k", fn_keep, NULL);
	assert_true(get_rec(s, STORE_TRIPLETS, "k", &r));
	assert_int_equal(r.count, 2);

	/* Tables are separate. */
	assert_false(get_rec(s, STORE_CLIENTS, "k", &r));

	rmw_sync(s, "k", fn_delete, NULL);
	assert_false(get_rec(s, STORE_TRIPLETS, "k", &r));
	rmw_sync(s, "k", fn_delete, NULL); /* deleting nothing is fine */

	/* put / del / foreach / stats. */
	r = (struct store_rec){.first_seen = 1,
			       .last_seen = 2,
			       .expires = fake_now + 5,
			       .count = 7,
			       .passed = 3};
	assert_int_equal(store_put(s, STORE_WHITELIST, "192.0.2.0/24", 12, &r,
				   err, sizeof(err)),
			 0);
	memset(&r, 0, sizeof(r));
	assert_true(get_rec(s, STORE_WHITELIST, "192.0.2.0/24", &r));
	assert_int_equal(r.count, 7);
	assert_int_equal(r.passed, 3);
	assert_int_equal(r.first_seen, 1);
	assert_int_equal(count_live(s, STORE_WHITELIST), 1);

	struct store_stats stats;
	assert_int_equal(store_stats(s, &stats, err, sizeof(err)), 0);
	assert_int_equal(stats.records[STORE_WHITELIST], 1);
	assert_int_equal(stats.records[STORE_TRIPLETS], 0);
	assert_true(stats.bytes > 0);

	assert_int_equal(store_del(s, STORE_WHITELIST, "192.0.2.0/24", 12,
				   &found, err, sizeof(err)),
			 0);
	assert_true(found);
	assert_int_equal(store_del(s, STORE_WHITELIST, "192.0.2.0/24", 12,
				   &found, err, sizeof(err)),
			 0);
	assert_false(found);
	assert_int_equal(store_flush(s, err, sizeof(err)), 0);

	/* Bad arguments are errors, not crashes. */
	assert_int_equal(
	    store_get(s, STORE_NTABLES, "k", 1, &r, &found, err, sizeof(err)),
	    -1);
	assert_int_equal(
	    store_put(s, STORE_TRIPLETS, "k", 0, &r, err, sizeof(err)), -1);
	char big[STORE_KEY_MAX + 1];
	memset(big, 'x', sizeof(big));
	assert_int_equal(store_put(s, STORE_TRIPLETS, big, sizeof(big), &r, err,
				   sizeof(err)),
			 -1);
	store_close(s);

	/* The record survives a reopen. */
	s = open_store(f->dir, NULL, 0, true, false);
	assert_non_null(s);
	assert_false(get_rec(s, STORE_TRIPLETS, "k", &r));
	rmw_sync(s, "k", fn_incr, NULL);
	store_close(s);
	s = open_store(f->dir, NULL, 0, false, true);
	assert_non_null(s);
	assert_true(get_rec(s, STORE_TRIPLETS, "k", &r));
	assert_int_equal(r.count, 1);
	store_close(s);
}

static void test_readonly_refuses_writes(void **state)
{
	struct fixture *f = *state;
	struct store *s;
	struct store_rec r = {.expires = fake_now + 10, .count = 1};
	char err[256] = "";
	size_t removed;

	/* No store yet: a read-only open fails instead of creating one. */
	assert_null(open_store(f->dir, NULL, 0, false, true));

	s = open_store(f->dir, NULL, 0, false, false);
	assert_non_null(s);
	assert_int_equal(
	    store_put(s, STORE_CLIENTS, "c", 1, &r, err, sizeof(err)), 0);
	store_close(s);

	s = open_store(f->dir, NULL, 0, false, true);
	assert_non_null(s);
	assert_true(get_rec(s, STORE_CLIENTS, "c", &r));
	assert_int_equal(
	    store_put(s, STORE_CLIENTS, "d", 1, &r, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "read-only"));
	assert_int_equal(
	    store_expire(s, fake_now, 10, &removed, err, sizeof(err)), -1);
	struct dones d = {0};
	store_rmw(s, STORE_CLIENTS, "c", 1, fake_now, fn_incr, NULL, done_count,
		  &d);
	assert_int_equal(d.failed, 1);
	assert_int_equal(count_live(s, STORE_CLIENTS), 1);
	store_close(s);
}

static void test_expired_records_are_invisible(void **state)
{
	struct fixture *f = *state;
	struct store *s = open_store(f->dir, NULL, 0, false, false);
	struct store_rec r = {.first_seen = 5, .expires = 100, .count = 4};
	struct seen seen;
	char err[256];
	int64_t at;

	assert_non_null(s);
	assert_int_equal(
	    store_put(s, STORE_TRIPLETS, "e", 1, &r, err, sizeof(err)), 0);

	fake_now = 100; /* expires == now: still alive */
	assert_true(get_rec(s, STORE_TRIPLETS, "e", &r));
	assert_int_equal(count_live(s, STORE_TRIPLETS), 1);
	store_rmw(s, STORE_TRIPLETS, "e", 1, 100, fn_observe, &seen, NULL,
		  NULL);
	assert_true(seen.present);
	assert_int_equal(seen.count, 4);

	fake_now = 101;
	assert_false(get_rec(s, STORE_TRIPLETS, "e", &r));
	assert_int_equal(count_live(s, STORE_TRIPLETS), 0);
	store_rmw(s, STORE_TRIPLETS, "e", 1, 101, fn_observe, &seen, NULL,
		  NULL);
	assert_false(seen.present);

	/* An increment of an expired record starts again from 1. */
	at = 101;
	store_rmw(s, STORE_TRIPLETS, "e", 1, at, fn_incr, &at, NULL, NULL);
	assert_true(get_rec(s, STORE_TRIPLETS, "e", &r));
	assert_int_equal(r.count, 1);
	assert_int_equal(r.first_seen, 101);
	store_close(s);
}

static void test_expire_resumes_in_bounded_batches(void **state)
{
	struct fixture *f = *state;
	struct store *s = open_store(f->dir, NULL, 0, false, false);
	char key[16], err[256];
	struct store_rec r;
	struct store_stats st;
	size_t removed, total = 0;

	assert_non_null(s);
	/* 100 triplets and 20 clients; even ones expire at 500. */
	for (int i = 0; i < 100; i++) {
		snprintf(key, sizeof(key), "k%03d", i);
		r = (struct store_rec){.expires = i % 2 == 0 ? 500 : 5000,
				       .count = (uint32_t)i};
		assert_int_equal(
		    store_put(s, STORE_TRIPLETS, key, 4, &r, err, sizeof(err)),
		    0);
	}
	for (int i = 0; i < 20; i++) {
		snprintf(key, sizeof(key), "c%02d", i);
		r = (struct store_rec){.expires = i % 2 == 0 ? 500 : 5000};
		assert_int_equal(
		    store_put(s, STORE_CLIENTS, key, 3, &r, err, sizeof(err)),
		    0);
	}

	/* Before anything expires nothing is removed. */
	assert_int_equal(store_expire(s, 500, 10, &removed, err, sizeof(err)),
			 0);
	assert_int_equal(removed, 0);

	/* The first batch takes the first ten dead keys in table order. */
	assert_int_equal(store_expire(s, 501, 10, &removed, err, sizeof(err)),
			 0);
	assert_int_equal(removed, 10);
	fake_now = 0; /* so that get shows dead records too */
	assert_false(get_rec(s, STORE_TRIPLETS, "k018", &r));
	assert_true(get_rec(s, STORE_TRIPLETS, "k020", &r));
	assert_true(get_rec(s, STORE_TRIPLETS, "k019", &r));

	/* The next one, from another handle (as from another process: the
	 * position is kept in the store), resumes after k018. */
	r = (struct store_rec){.expires = 1}; /* dead, before the cursor */
	assert_int_equal(
	    store_put(s, STORE_TRIPLETS, "k001x", 5, &r, err, sizeof(err)), 0);
	store_close(s);
	s = open_store(f->dir, NULL, 0, false, false);
	assert_non_null(s);
	assert_int_equal(store_expire(s, 501, 10, &removed, err, sizeof(err)),
			 0);
	assert_int_equal(removed, 10);
	assert_false(get_rec(s, STORE_TRIPLETS, "k038", &r));
	assert_true(get_rec(s, STORE_TRIPLETS, "k040", &r));
	assert_true(get_rec(s, STORE_TRIPLETS, "k000", &r) == false);
	assert_true(get_rec(s, STORE_TRIPLETS, "k001x", &r)); /* not yet */

	/* Carry on across tables until everything dead is gone. */
	total = 20;
	for (int i = 0; i < 10; i++) {
		assert_int_equal(
		    store_expire(s, 501, 10, &removed, err, sizeof(err)), 0);
		assert_true(removed <= 10);
		total += removed;
	}
	assert_int_equal(total, 61);
	assert_false(get_rec(s, STORE_TRIPLETS, "k001x", &r)); /* wrapped */
	assert_int_equal(store_stats(s, &st, err, sizeof(err)), 0);
	assert_int_equal(st.records[STORE_TRIPLETS], 50);
	assert_int_equal(st.records[STORE_CLIENTS], 10);
	assert_int_equal(st.expired, 51); /* since the reopen */

	/* Wrapping around: new dead records before the cursor are found. */
	r = (struct store_rec){.expires = 1};
	assert_int_equal(
	    store_put(s, STORE_TRIPLETS, "a", 1, &r, err, sizeof(err)), 0);
	assert_int_equal(store_expire(s, 501, 10, &removed, err, sizeof(err)),
			 0);
	assert_int_equal(removed, 1);
	store_close(s);
}

/* A purge (max = SIZE_MAX) over more records than one transaction
 * examines (LMDB_EXPIRE_TXN_SCAN, 20000) removes every dead one. */
static void test_unbounded_expire_spans_transactions(void **state)
{
	struct fixture *f = *state;
	struct store *s = open_store(f->dir, NULL, 0, false, false);
	struct store_rec r;
	struct store_stats st;
	char key[16], err[256];
	size_t removed;

	assert_non_null(s);
	for (int i = 0; i < 26000; i++) {
		snprintf(key, sizeof(key), "p%06d", i);
		r = (struct store_rec){.expires = i % 26 == 0 ? 5000 : 10};
		assert_int_equal(
		    store_put(s, i % 2 ? STORE_TRIPLETS : STORE_CLIENTS, key,
			      strlen(key), &r, err, sizeof(err)),
		    0);
	}
	assert_int_equal(
	    store_expire(s, 100, SIZE_MAX, &removed, err, sizeof(err)), 0);
	assert_int_equal(removed, 25000);
	assert_int_equal(store_stats(s, &st, err, sizeof(err)), 0);
	assert_int_equal(st.records[STORE_TRIPLETS] + st.records[STORE_CLIENTS],
			 1000);
	assert_int_equal(st.expired, 25000);
	assert_int_equal(
	    store_expire(s, 100, SIZE_MAX, &removed, err, sizeof(err)), 0);
	assert_int_equal(removed, 0);
	store_close(s);
}

/* Writes a raw value under key in the triplets table, bypassing the store. */
static void raw_put(const char *dir, const char *key, const void *val,
		    size_t len)
{
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi dbi;
	MDB_val k = {.mv_size = strlen(key), .mv_data = (void *)key};
	MDB_val v = {.mv_size = len, .mv_data = (void *)val};

	assert_int_equal(mdb_env_create(&env), 0);
	assert_int_equal(mdb_env_set_maxdbs(env, 4), 0);
	assert_int_equal(mdb_env_open(env, dir, MDB_NOTLS, 0640), 0);
	assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
	assert_int_equal(mdb_dbi_open(txn, "triplets", 0, &dbi), 0);
	assert_int_equal(mdb_put(txn, dbi, &k, &v, 0), 0);
	assert_int_equal(mdb_txn_commit(txn), 0);
	mdb_env_close(env);
}

static void test_corrupt_record_is_absent(void **state)
{
	struct fixture *f = *state;
	struct store *s = open_store(f->dir, NULL, 0, false, false);
	struct store_rec r = {.expires = fake_now + 100, .count = 1};
	unsigned char enc[STORE_REC_SIZE], v2[STORE_REC_SIZE];
	struct store_stats st;
	struct seen seen;
	char err[256];
	size_t removed;

	assert_non_null(s);
	store_close(s);
	store_rec_encode(&r, enc);
	memcpy(v2, enc, sizeof(v2));
	v2[0] = STORE_REC_VERSION + 1;
	raw_put(f->dir, "short", enc, sizeof(enc) - 1);
	raw_put(f->dir, "long", "0123456789012345678901234567890123456789", 40);
	raw_put(f->dir, "v2", v2, sizeof(v2));
	raw_put(f->dir, "good", enc, sizeof(enc));

	s = open_store(f->dir, NULL, 0, false, false);
	assert_non_null(s);
	assert_true(get_rec(s, STORE_TRIPLETS, "good", &r));
	assert_false(get_rec(s, STORE_TRIPLETS, "short", &r));
	assert_false(get_rec(s, STORE_TRIPLETS, "long", &r));
	assert_false(get_rec(s, STORE_TRIPLETS, "v2", &r));
	assert_int_equal(count_live(s, STORE_TRIPLETS), 1);
	assert_int_equal(store_stats(s, &st, err, sizeof(err)), 0);
	assert_true(st.errors >= 3);

	store_rmw(s, STORE_TRIPLETS, "short", 5, fake_now, fn_observe, &seen,
		  NULL, NULL);
	assert_false(seen.present);
	rmw_sync(s, "short", fn_incr, NULL);
	assert_true(get_rec(s, STORE_TRIPLETS, "short", &r));
	assert_int_equal(r.count, 1);

	/* The sweep removes undecodable records. */
	assert_int_equal(
	    store_expire(s, fake_now, 100, &removed, err, sizeof(err)), 0);
	assert_int_equal(removed, 2);
	assert_int_equal(store_stats(s, &st, err, sizeof(err)), 0);
	assert_int_equal(st.records[STORE_TRIPLETS], 2);
	store_close(s);
}

static void test_record_encoding_is_fixed(void **state)
{
	struct store_rec r = {.first_seen = 0x0102030405060708LL,
			      .last_seen = -2,
			      .expires = 0x7fffffffffffffffLL,
			      .count = 0xa1b2c3d4u,
			      .passed = 5};
	unsigned char b[STORE_REC_SIZE];
	struct store_rec back;

	(void)state;
	assert_int_equal(STORE_REC_SIZE, 33);
	store_rec_encode(&r, b);
	assert_int_equal(b[0], STORE_REC_VERSION);
	assert_int_equal(b[1], 0x08); /* little-endian */
	assert_int_equal(b[8], 0x01);
	assert_int_equal(b[9], 0xfe);
	assert_int_equal(b[16], 0xff);
	assert_int_equal(b[24], 0x7f);
	assert_int_equal(b[25], 0xd4);
	assert_int_equal(b[28], 0xa1);
	assert_int_equal(b[29], 5);
	assert_true(store_rec_decode(b, sizeof(b), &back));
	assert_memory_equal(&r, &back, sizeof(r));
	assert_false(store_rec_decode(b, sizeof(b) - 1, &back));
	assert_false(store_rec_decode(NULL, 0, &back));
	b[0] = 0;
	assert_false(store_rec_decode(b, sizeof(b), &back));
	assert_string_equal(store_table_name(STORE_TRIPLETS), "triplets");
	assert_string_equal(store_table_name(STORE_CLIENTS), "clients");
	assert_string_equal(store_table_name(STORE_WHITELIST), "whitelist");
}

struct key_seen {
	size_t n;
	size_t lens[4];
	unsigned char last[4];
};

static int visit_keys(void *arg, const void *key, size_t keylen,
		      const struct store_rec *rec)
{
	struct key_seen *ks = arg;

	(void)rec;
	if (ks->n < 4) {
		ks->lens[ks->n] = keylen;
		ks->last[ks->n] = ((const unsigned char *)key)[keylen - 1];
	}
	ks->n++;
	return 0;
}

static void test_long_keys(void **state)
{
	struct fixture *f = *state;
	struct store *s = open_store(f->dir, NULL, 0, false, false);
	unsigned char a[STORE_KEY_MAX], b[STORE_KEY_MAX];
	struct store_rec r = {.expires = fake_now + 10};
	struct key_seen ks = {0};
	char err[256];
	bool found;

	assert_non_null(s);
	/* Same first 700 bytes: only the tail tells them apart. */
	memset(a, 'a', sizeof(a));
	memcpy(b, a, sizeof(b));
	b[sizeof(b) - 1] = 'b';
	r.count = 1;
	assert_int_equal(
	    store_put(s, STORE_TRIPLETS, a, sizeof(a), &r, err, sizeof(err)),
	    0);
	r.count = 2;
	assert_int_equal(
	    store_put(s, STORE_TRIPLETS, b, sizeof(b), &r, err, sizeof(err)),
	    0);
	r.count = 3;
	assert_int_equal(
	    store_put(s, STORE_TRIPLETS, a, 500, &r, err, sizeof(err)), 0);
	assert_int_equal(store_get(s, STORE_TRIPLETS, a, sizeof(a), &r, &found,
				   err, sizeof(err)),
			 0);
	assert_true(found);
	assert_int_equal(r.count, 1);
	assert_int_equal(store_get(s, STORE_TRIPLETS, b, sizeof(b), &r, &found,
				   err, sizeof(err)),
			 0);
	assert_true(found);
	assert_int_equal(r.count, 2);
	assert_int_equal(
	    store_get(s, STORE_TRIPLETS, a, 500, &r, &found, err, sizeof(err)),
	    0);
	assert_true(found);
	assert_int_equal(r.count, 3);

	/* foreach gives back the original keys. */
	assert_int_equal(
	    store_foreach(s, STORE_TRIPLETS, visit_keys, &ks, err, sizeof(err)),
	    0);
	assert_int_equal(ks.n, 3);
	for (size_t i = 0; i < 3; i++)
		assert_true(ks.lens[i] == 500 || ks.lens[i] == STORE_KEY_MAX);

	/* rmw on a long key. */
	store_rmw(s, STORE_TRIPLETS, b, sizeof(b), fake_now, fn_incr, NULL,
		  NULL, NULL);
	assert_int_equal(store_get(s, STORE_TRIPLETS, b, sizeof(b), &r, &found,
				   err, sizeof(err)),
			 0);
	assert_int_equal(r.count, 3);
	assert_int_equal(store_del(s, STORE_TRIPLETS, a, sizeof(a), &found, err,
				   sizeof(err)),
			 0);
	assert_true(found);
	assert_int_equal(count_live(s, STORE_TRIPLETS), 2);
	store_close(s);
}

/* ---------------------------------------------------------------- */
/* Group commit, seen from another process. */

/* What the observer child reports about key "g". */
struct observation {
	int found;
	uint32_t count;
	size_t txnid;
};

/* Child: answers each byte on cmd with an observation of key "g", read
 * straight from LMDB (not through the store), until EOF. */
static void observer(const char *dir, int cmd, int out)
{
	MDB_env *env = NULL;
	char c;

	while (read(cmd, &c, 1) == 1) {
		struct observation o = {0};
		MDB_txn *txn;
		MDB_dbi dbi;
		MDB_envinfo info;
		MDB_val k = {.mv_size = 1, .mv_data = "g"}, v;
		struct store_rec r;

		if (env == NULL &&
		    (mdb_env_create(&env) != 0 ||
		     mdb_env_set_maxdbs(env, 4) != 0 ||
		     mdb_env_open(env, dir, MDB_NOTLS | MDB_RDONLY, 0) != 0))
			_exit(2);
		if (mdb_txn_begin(env, NULL, MDB_RDONLY, &txn) != 0)
			_exit(3);
		if (mdb_dbi_open(txn, "triplets", 0, &dbi) == 0 &&
		    mdb_get(txn, dbi, &k, &v) == 0 &&
		    store_rec_decode(v.mv_data, v.mv_size, &r)) {
			o.found = 1;
			o.count = r.count;
		}
		mdb_txn_abort(txn);
		mdb_env_info(env, &info);
		o.txnid = info.me_last_txnid;
		if (write(out, &o, sizeof(o)) != (ssize_t)sizeof(o))
			_exit(4);
	}
	_exit(0);
}

struct group_test {
	struct store *s;
	struct dones d;
	int cmd, resp;
	struct observation during;
	int b_saw_dones;
};

static struct observation observe(int cmd, int resp)
{
	struct observation o;

	assert_int_equal(write(cmd, "q", 1), 1);
	assert_int_equal(read(resp, &o, sizeof(o)), sizeof(o));
	return o;
}

/* First callback of the turn: three increments of "g", one of "h". */
static void turn_a(evutil_socket_t fd, short what, void *arg)
{
	struct group_test *g = arg;

	(void)fd;
	(void)what;
	for (int i = 0; i < 3; i++)
		store_rmw(g->s, STORE_TRIPLETS, "g", 1, fake_now, fn_incr, NULL,
			  done_count, &g->d);
	store_rmw(g->s, STORE_TRIPLETS, "h", 1, fake_now, fn_incr, NULL,
		  done_count, &g->d);
	/* Nothing is visible to another process yet. */
	g->during = observe(g->cmd, g->resp);
}

/* Second callback, ready in the same turn: the commit has not run. */
static void turn_b(evutil_socket_t fd, short what, void *arg)
{
	struct group_test *g = arg;

	(void)fd;
	(void)what;
	g->b_saw_dones = g->d.ok + g->d.failed;
	marker = 1;
}

static void test_group_commit_one_txn_per_turn(void **state)
{
	struct fixture *f = *state;
	int cmdp[2], respp[2], wst;
	pid_t pid;
	struct group_test g = {0};
	struct event_base *base;
	struct event *ea, *eb;
	struct observation before, after;
	struct store_rec r;

	assert_int_equal(pipe(cmdp), 0);
	assert_int_equal(pipe(respp), 0);
	/* Fork before the parent opens LMDB: a child must open its own. */
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		close(cmdp[1]);
		close(respp[0]);
		observer(f->dir, cmdp[0], respp[1]);
	}
	close(cmdp[0]);
	close(respp[1]);
	g.cmd = cmdp[1];
	g.resp = respp[0];

	base = event_base_new();
	assert_non_null(base);
	g.s = open_store(f->dir, base, 0, true, false);
	assert_non_null(g.s);
	before = observe(g.cmd, g.resp);
	assert_false(before.found);

	marker = 0;
	ea = event_new(base, -1, 0, turn_a, &g);
	eb = event_new(base, -1, 0, turn_b, &g);
	event_active(ea, EV_TIMEOUT, 1);
	event_active(eb, EV_TIMEOUT, 1);
	assert_int_equal(event_base_loop(base, EVLOOP_ONCE), 0);

	/* During the turn: not visible, no done yet, even in a later
	 * callback of the same turn. */
	assert_false(g.during.found);
	assert_int_equal(g.during.txnid, before.txnid);
	assert_int_equal(g.b_saw_dones, 0);
	/* After the turn: all four dones ran, after turn_b, one commit. */
	assert_int_equal(g.d.ok, 4);
	assert_int_equal(g.d.failed, 0);
	assert_int_equal(g.d.order_mark, 1);
	after = observe(g.cmd, g.resp);
	assert_true(after.found);
	assert_int_equal(after.count, 3);
	assert_int_equal(after.txnid, before.txnid + 1);

	/* The next turn makes a new transaction. */
	memset(&g.d, 0, sizeof(g.d));
	event_active(ea, EV_TIMEOUT, 1);
	assert_int_equal(event_base_loop(base, EVLOOP_ONCE), 0);
	assert_int_equal(g.d.ok, 4);
	after = observe(g.cmd, g.resp);
	assert_int_equal(after.count, 6);
	assert_int_equal(after.txnid, before.txnid + 2);
	assert_true(get_rec(g.s, STORE_TRIPLETS, "h", &r));
	assert_int_equal(r.count, 2);

	close(g.cmd);
	assert_int_equal(waitpid(pid, &wst, 0), pid);
	assert_true(WIFEXITED(wst) && WEXITSTATUS(wst) == 0);
	close(g.resp);
	event_free(ea);
	event_free(eb);
	store_close(g.s);
	event_base_free(base);
}

/* A done that queues another rmw: it joins the next group. */
struct chain {
	struct store *s;
	int stage;
	struct dones d;
};

static void chain_done(void *arg, int status, const char *err)
{
	struct chain *c = arg;

	(void)err;
	assert_int_equal(status, 0);
	if (c->stage++ == 0)
		store_rmw(c->s, STORE_CLIENTS, "x", 1, fake_now, fn_incr, NULL,
			  done_count, &c->d);
}

static void test_rmw_from_done_and_get_in_group(void **state)
{
	struct fixture *f = *state;
	struct event_base *base = event_base_new();
	struct chain c = {0};
	struct store_rec r;

	c.s = open_store(f->dir, base, 0, false, false);
	assert_non_null(c.s);
	store_rmw(c.s, STORE_CLIENTS, "x", 1, fake_now, fn_incr, NULL,
		  chain_done, &c);
	/* get reads through the open group: sees the uncommitted write. */
	assert_true(get_rec(c.s, STORE_CLIENTS, "x", &r));
	assert_int_equal(r.count, 1);
	assert_int_equal(event_base_loop(base, EVLOOP_NONBLOCK), 0);
	assert_int_equal(c.stage, 1);
	assert_int_equal(event_base_loop(base, EVLOOP_NONBLOCK), 0);
	assert_int_equal(c.d.ok, 1);
	assert_true(get_rec(c.s, STORE_CLIENTS, "x", &r));
	assert_int_equal(r.count, 2);

	/* close commits a pending group and runs its dones. */
	store_rmw(c.s, STORE_CLIENTS, "x", 1, fake_now, fn_incr, NULL,
		  done_count, &c.d);
	store_close(c.s);
	assert_int_equal(c.d.ok, 2);
	c.s = open_store(f->dir, NULL, 0, false, true);
	assert_true(get_rec(c.s, STORE_CLIENTS, "x", &r));
	assert_int_equal(r.count, 3);
	store_close(c.s);
	event_base_free(base);
}

/* One turn with more operations than one transaction takes (LMDB_GROUP_MAX,
 * 1000): committed in several transactions, every done after the turn. */
static void turn_many(evutil_socket_t fd, short what, void *arg)
{
	struct chain *c = arg;

	(void)fd;
	(void)what;
	for (int i = 0; i < 2500; i++)
		store_rmw(c->s, STORE_TRIPLETS, "many", 4, fake_now, fn_incr,
			  NULL, done_count, &c->d);
	c->stage = c->d.ok + c->d.failed;
}

static int stop_after_two(void *arg, const void *key, size_t keylen,
			  const struct store_rec *rec)
{
	(void)key;
	(void)keylen;
	(void)rec;
	return ++*(int *)arg == 2;
}

static void test_big_turn_commits_early_and_foreach_stops(void **state)
{
	struct fixture *f = *state;
	struct event_base *base = event_base_new();
	struct chain c = {0};
	struct event *ev;
	struct store_rec r;
	char err[256];
	int visits = 0;

	c.s = open_store(f->dir, base, 0, false, false);
	assert_non_null(c.s);
	ev = event_new(base, -1, 0, turn_many, &c);
	event_active(ev, EV_TIMEOUT, 1);
	assert_int_equal(event_base_loop(base, EVLOOP_ONCE), 0);
	assert_int_equal(c.stage, 0);
	assert_int_equal(c.d.ok, 2500);
	assert_true(get_rec(c.s, STORE_TRIPLETS, "many", &r));
	assert_int_equal(r.count, 2500);

	for (int i = 0; i < 5; i++) {
		char key[8];

		snprintf(key, sizeof(key), "f%d", i);
		r.expires = fake_now + 10;
		assert_int_equal(store_put(c.s, STORE_TRIPLETS, key, 2, &r, err,
					   sizeof(err)),
				 0);
	}
	assert_int_equal(event_base_loop(base, EVLOOP_NONBLOCK), 0);
	assert_int_equal(store_foreach(c.s, STORE_TRIPLETS, stop_after_two,
				       &visits, err, sizeof(err)),
			 0);
	assert_int_equal(visits, 2);
	event_free(ev);
	store_close(c.s);
	event_base_free(base);
}

/* ---------------------------------------------------------------- */
/* Several processes. */

struct turn_arg {
	struct store *s;
	const char *key;
	int n;
	struct dones *d;
	int report_fd; /* -1: none */
	int next;      /* next index to write (kill test) */
};

static void turn_incr(evutil_socket_t fd, short what, void *arg)
{
	struct turn_arg *t = arg;

	(void)fd;
	(void)what;
	for (int i = 0; i < t->n; i++)
		store_rmw(t->s, STORE_TRIPLETS, t->key, strlen(t->key),
			  fake_now, fn_incr, NULL, done_count, t->d);
}

/* Child: INCREMENTS increments of "shared", in groups or one by one. */
static void incrementer(const char *dir, bool grouped)
{
	struct event_base *base = grouped ? event_base_new() : NULL;
	struct store *s = open_store(dir, base, 0, false, false);
	struct dones d = {0};
	struct turn_arg t = {.s = s, .key = "shared", .n = PER_TURN, .d = &d};

	if (s == NULL)
		_exit(2);
	if (grouped) {
		struct event *ev = event_new(base, -1, 0, turn_incr, &t);

		for (int i = 0; i < INCREMENTS / PER_TURN; i++) {
			event_active(ev, EV_TIMEOUT, 1);
			event_base_loop(base, EVLOOP_ONCE);
		}
		event_free(ev);
	} else {
		for (int i = 0; i < INCREMENTS; i++)
			store_rmw(s, STORE_TRIPLETS, "shared", 6, fake_now,
				  fn_incr, NULL, done_count, &d);
	}
	store_close(s);
	if (base != NULL)
		event_base_free(base);
	_exit(d.ok == INCREMENTS && d.failed == 0 ? 0 : 1);
}

static void test_two_processes_increment_one_key(void **state)
{
	struct fixture *f = *state;
	pid_t pids[2];
	struct store *s;
	struct store_rec r;

	/* Create the store first so that both children find it. */
	s = open_store(f->dir, NULL, 0, false, false);
	assert_non_null(s);
	store_close(s);
	for (int i = 0; i < 2; i++) {
		pids[i] = fork();
		assert_true(pids[i] >= 0);
		if (pids[i] == 0)
			incrementer(f->dir, i == 0);
	}
	for (int i = 0; i < 2; i++) {
		int wst;

		assert_int_equal(waitpid(pids[i], &wst, 0), pids[i]);
		assert_true(WIFEXITED(wst));
		assert_int_equal(WEXITSTATUS(wst), 0);
	}
	s = open_store(f->dir, NULL, 0, false, true);
	assert_non_null(s);
	assert_true(get_rec(s, STORE_TRIPLETS, "shared", &r));
	assert_int_equal(r.count, 2 * INCREMENTS);
	store_close(s);
}

/* Kill test: each done reports its record's index through a pipe. */
struct report {
	int fd;
	uint32_t index;
};

static void done_report(void *arg, int status, const char *err)
{
	struct report *rep = arg;

	(void)err;
	if (status == 0 && write(rep->fd, &rep->index, sizeof(rep->index)) !=
			       (ssize_t)sizeof(rep->index))
		_exit(5);
	free(rep);
}

static void turn_write_new(evutil_socket_t fd, short what, void *arg)
{
	struct turn_arg *t = arg;
	char key[16];

	(void)fd;
	(void)what;
	for (int i = 0; i < t->n; i++) {
		struct report *rep = malloc(sizeof(*rep));

		if (rep == NULL)
			_exit(6);
		rep->fd = t->report_fd;
		rep->index = (uint32_t)t->next++;
		snprintf(key, sizeof(key), "n%07u", rep->index);
		store_rmw(t->s, STORE_TRIPLETS, key, strlen(key), fake_now,
			  fn_incr, NULL, done_report, rep);
	}
}

static void writer_forever(const char *dir, int out)
{
	struct event_base *base = event_base_new();
	struct store *s = open_store(dir, base, 0, false, false);
	struct turn_arg t = {.s = s, .n = 50, .report_fd = out};
	struct event *ev;

	if (s == NULL)
		_exit(2);
	ev = event_new(base, -1, 0, turn_write_new, &t);
	for (;;) {
		event_active(ev, EV_TIMEOUT, 1);
		event_base_loop(base, EVLOOP_ONCE);
	}
}

static void test_kill9_keeps_every_acknowledged_record(void **state)
{
	struct fixture *f = *state;
	int p[2], wst;
	pid_t pid;
	uint32_t idx, n = 0, max = 0;
	unsigned char *seen;
	struct store *s;
	struct store_rec r;
	char key[16];
	size_t cap = 1 << 22;

	assert_int_equal(pipe(p), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		close(p[0]);
		writer_forever(f->dir, p[1]);
	}
	close(p[1]);
	seen = calloc(cap, 1);
	assert_non_null(seen);
	while (read(p[0], &idx, sizeof(idx)) == (ssize_t)sizeof(idx)) {
		assert_true(idx < cap);
		seen[idx] = 1;
		if (idx > max)
			max = idx;
		if (++n == 3000)
			kill(pid, SIGKILL);
	}
	assert_int_equal(waitpid(pid, &wst, 0), pid);
	assert_true(WIFSIGNALED(wst) && WTERMSIG(wst) == SIGKILL);
	close(p[0]);
	assert_true(n >= 3000);

	s = open_store(f->dir, NULL, 0, false, false);
	assert_non_null(s);
	for (uint32_t i = 0; i <= max; i++) {
		if (!seen[i])
			continue;
		snprintf(key, sizeof(key), "n%07u", i);
		assert_true(get_rec(s, STORE_TRIPLETS, key, &r));
		assert_int_equal(r.count, 1);
	}
	/* The writer lock the dead child may have held is usable. */
	rmw_sync(s, "after-kill", fn_incr, NULL);
	store_close(s);
	free(seen);
}

/* ---------------------------------------------------------------- */
/* Map growth. */

static void test_map_grows_past_tiny_mapsize(void **state)
{
	struct fixture *f = *state;
	struct event_base *base = event_base_new();
	struct store *s = open_store(f->dir, base, 64 << 10, false, false);
	struct dones d = {0};
	struct turn_arg t = {.s = s, .n = PER_TURN, .d = &d, .report_fd = -1};
	struct event *ev;
	struct store_rec r;
	struct store_stats st;
	char err[256], key[16];

	assert_non_null(s);
	ev = event_new(base, -1, 0, turn_write_new, &t);
	/* turn_write_new reports through done_report: use a /dev/null fd. */
	t.report_fd = open("/dev/null", 1);
	assert_true(t.report_fd >= 0);
	for (int i = 0; i < 40; i++) {
		event_active(ev, EV_TIMEOUT, 1);
		assert_int_equal(event_base_loop(base, EVLOOP_ONCE), 0);
		/* Replays after a resize must not apply an rmw twice. */
		t.key = "counter";
		turn_incr(-1, 0, &t);
		assert_int_equal(event_base_loop(base, EVLOOP_NONBLOCK), 0);
	}
	close(t.report_fd);
	assert_int_equal(d.failed, 0);
	assert_int_equal(d.ok, 40 * PER_TURN);
	for (int i = 0; i < 40 * PER_TURN; i++) {
		snprintf(key, sizeof(key), "n%07d", i);
		assert_true(get_rec(s, STORE_TRIPLETS, key, &r));
		assert_int_equal(r.count, 1);
	}
	assert_true(get_rec(s, STORE_TRIPLETS, "counter", &r));
	assert_int_equal(r.count, 40 * PER_TURN);
	assert_int_equal(store_stats(s, &st, err, sizeof(err)), 0);
	assert_true(st.bytes > (64 << 10));
	assert_int_equal(st.records[STORE_TRIPLETS], 40 * PER_TURN + 1);
	event_free(ev);
	store_close(s);
	event_base_free(base);
}

/* Child of the resize test: grows the map far past the parent's. */
static void grower(const char *dir, int go)
{
	struct store *s;
	struct store_rec r = {.expires = INT64_MAX};
	char key[16], c, err[256];

	if (read(go, &c, 1) != 1)
		_exit(2);
	s = open_store(dir, NULL, 64 << 10, false, false);
	if (s == NULL)
		_exit(3);
	for (int i = 0; i < 20000; i++) {
		snprintf(key, sizeof(key), "w%07d", i);
		if (store_put(s, STORE_WHITELIST, key, strlen(key), &r, err,
			      sizeof(err)) != 0)
			_exit(4);
	}
	store_close(s);
	_exit(0);
}

static void test_map_grown_by_another_process(void **state)
{
	struct fixture *f = *state;
	int p[2], wst;
	pid_t pid;
	struct store *s;
	struct store_rec r;
	size_t removed;
	char err[256];

	assert_int_equal(pipe(p), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		close(p[1]);
		grower(f->dir, p[0]);
	}
	close(p[0]);
	s = open_store(f->dir, NULL, 64 << 10, false, false);
	assert_non_null(s);
	rmw_sync(s, "before", fn_incr, NULL);
	assert_int_equal(write(p[1], "g", 1), 1);
	assert_int_equal(waitpid(pid, &wst, 0), pid);
	assert_true(WIFEXITED(wst) && WEXITSTATUS(wst) == 0);
	close(p[1]);

	/* Reads and writes go on with the bigger map. */
	assert_true(get_rec(s, STORE_WHITELIST, "w0019999", &r));
	rmw_sync(s, "after", fn_incr, NULL);
	assert_int_equal(count_live(s, STORE_WHITELIST), 20000);
	assert_int_equal(
	    store_expire(s, fake_now, 10, &removed, err, sizeof(err)), 0);
	store_close(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_record_encoding_is_fixed),
	    cmocka_unit_test_setup_teardown(test_rmw_create_keep_delete, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_readonly_refuses_writes, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_expired_records_are_invisible,
					    setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_expire_resumes_in_bounded_batches, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_unbounded_expire_spans_transactions, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_corrupt_record_is_absent,
					    setup, teardown),
	    cmocka_unit_test_setup_teardown(test_long_keys, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_group_commit_one_txn_per_turn,
					    setup, teardown),
	    cmocka_unit_test_setup_teardown(test_rmw_from_done_and_get_in_group,
					    setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_big_turn_commits_early_and_foreach_stops, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_two_processes_increment_one_key, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_kill9_keeps_every_acknowledged_record, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_map_grows_past_tiny_mapsize,
					    setup, teardown),
	    cmocka_unit_test_setup_teardown(test_map_grown_by_another_process,
					    setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
