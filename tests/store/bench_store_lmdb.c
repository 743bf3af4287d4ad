/*
 * bench_store_lmdb - throughput of store_rmw() on the LMDB store.
 *
 * Usage: bench_store_lmdb [OPS [DIR [PER_TURN]]]
 *
 * Runs OPS increments (default 200000) of random triplet-like keys drawn
 * from BENCH_KEYS distinct keys, BENCH_PER_TURN per event-loop turn, so each
 * turn is one group commit, once with sync=no and once with sync=yes (the
 * latter with OPS / 10, because each commit waits for fsync). Then the same
 * without an event loop (one commit per call, the command-line path). Prints
 * one line per run with operations per second and commits per second. The
 * store lives in a fresh directory under DIR (default /var/tmp, a disk:
 * /tmp may be tmpfs, where fsync costs nothing) and is removed afterwards.
 * Bounded in count; no network.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "store/lmdb.h"
#include "store/store.h"

/* Distinct keys: the size of a busy MX's greylist (our choice). */
#define BENCH_KEYS 100000
/* Operations per loop turn: the group size asked for by the design. */
#define BENCH_PER_TURN 100
/* Retention written into records: DESIGN.md's default max_age, 35 days. */
#define BENCH_TTL (35 * 86400)

/* Operations per turn: BENCH_PER_TURN unless given as the third argument. */
static size_t per_turn = BENCH_PER_TURN;

struct bench {
	struct store *s;
	struct event *ev;
	uint64_t rng;
	size_t todo, done, failed;
	int64_t now;
};

static uint64_t next_rand(uint64_t *x)
{
	/* xorshift64: fast and good enough to spread keys. */
	*x ^= *x << 13;
	*x ^= *x >> 7;
	*x ^= *x << 17;
	return *x;
}

static size_t make_key(char *buf, size_t size, uint64_t n)
{
	int len = snprintf(buf, size,
			   "198.51.%u.0/24\037sender%" PRIu64
			   "@example.org\037rcpt@example.net",
			   (unsigned)(n % 256), n);

	return len < 0 || (size_t)len >= size ? 0 : (size_t)len;
}

static enum store_verdict incr(void *arg, const struct store_rec *old,
			       struct store_rec *rec)
{
	int64_t now = *(const int64_t *)arg;

	if (old == NULL)
		rec->first_seen = now;
	rec->last_seen = now;
	rec->expires = now + BENCH_TTL;
	rec->count++;
	return STORE_WRITE;
}

static void done_cb(void *arg, int status, const char *err)
{
	struct bench *b = arg;

	(void)err;
	b->done++;
	if (status != 0)
		b->failed++;
}

static void one(struct bench *b)
{
	char key[128];
	size_t len =
	    make_key(key, sizeof(key), next_rand(&b->rng) % BENCH_KEYS);

	store_rmw(b->s, STORE_TRIPLETS, key, len, b->now, incr, &b->now,
		  done_cb, b);
	b->todo--;
}

static void turn(evutil_socket_t fd, short what, void *arg)
{
	struct bench *b = arg;

	(void)fd;
	(void)what;
	for (size_t i = 0; i < per_turn && b->todo > 0; i++)
		one(b);
	if (b->todo > 0)
		event_active(b->ev, EV_TIMEOUT, 1);
}

static double seconds(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int run(const char *parent, size_t ops, bool sync, bool grouped)
{
	char dir[256], p[300], err[256];
	struct event_base *base = grouped ? event_base_new() : NULL;
	struct lmdb_config cfg = {.sync = sync};
	struct bench b = {.rng = 88172645463325252ULL,
			  .todo = ops,
			  .now = (int64_t)time(NULL)};
	double t0, t1;

	snprintf(dir, sizeof(dir), "%s/greyspf-bench-XXXXXX", parent);
	if (mkdtemp(dir) == NULL) {
		perror(dir);
		return -1;
	}
	cfg.path = dir;
	b.s = store_lmdb_open(base, &cfg, err, sizeof(err));
	if (b.s == NULL) {
		fprintf(stderr, "open: %s\n", err);
		return -1;
	}
	t0 = seconds();
	if (grouped) {
		b.ev = event_new(base, -1, 0, turn, &b);
		event_active(b.ev, EV_TIMEOUT, 1);
		/* Not event_base_dispatch(): the store's sync timer would keep
		 * it running for up to a second after the last write. */
		while (b.done < ops)
			event_base_loop(base, EVLOOP_ONCE);
		event_free(b.ev);
	} else {
		while (b.todo > 0)
			one(&b);
	}
	t1 = seconds();
	if (store_flush(b.s, err, sizeof(err)) != 0)
		fprintf(stderr, "flush: %s\n", err);
	store_close(b.s);
	if (base != NULL)
		event_base_free(base);
	printf("%-6s%-3zu sync=%-3s ops=%-7zu failed=%zu  %9.0f rmw/s  %8.0f "
	       "commits/s\n",
	       grouped ? "group" : "single", grouped ? per_turn : 1,
	       sync ? "yes" : "no", ops, b.failed, (double)ops / (t1 - t0),
	       (double)ops / (grouped ? (double)per_turn : 1) / (t1 - t0));
	snprintf(p, sizeof(p), "%s/data.mdb", dir);
	unlink(p);
	snprintf(p, sizeof(p), "%s/lock.mdb", dir);
	unlink(p);
	rmdir(dir);
	return b.failed == 0 && b.done == ops ? 0 : -1;
}

int main(int argc, char **argv)
{
	size_t ops = argc > 1 ? strtoul(argv[1], NULL, 10) : 200000;
	const char *dir = argc > 2 ? argv[2] : "/var/tmp";
	int rc = 0;

	if (argc > 3)
		per_turn = strtoul(argv[3], NULL, 10);
	if (per_turn == 0)
		per_turn = BENCH_PER_TURN;
	if (ops == 0)
		ops = 200000;
	rc |= run(dir, ops, false, true);
	rc |= run(dir, ops / 10, true, true);
	rc |= run(dir, ops, false, false);
	rc |= run(dir, ops / 100, true, false);
	return rc == 0 ? 0 : 1;
}
