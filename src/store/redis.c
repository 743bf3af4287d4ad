/*
 * redis - the shared greylist store on Redis; implements store.h, redis.h.
 *
 * LAYOUT
 *	One Redis string per record: key PREFIX + table letter ('t' triplets,
 *	'c' clients, 'w' whitelist) + ':' + the store key, or, with key_hash =
 *	hmac, + the 64 lower-case hex digits of HMAC-SHA256(key_secret, key).
 *	The whitelist table is never hashed: it holds CIDRs that the daemon
 *	reads back with foreach. With hashing, foreach (so `greyspf db list`
 *	and `dump`) returns the hex digest as the key: a shared Redis holds no
 *	addresses and nothing can recover them. A key given to get/put/del that
 *	already is 64 lower-case hex digits is taken as a digest and used as it
 *	is, so `db dump` output loads back; no real key has that form (triplet
 *	keys hold NULs, client keys '/' or ':').
 *	The value is the portable record of store.h (store_rec_encode: version
 *	byte, little-endian fields, 33 bytes), the same bytes as in LMDB.
 *
 * EXPIRY
 *	Every write sets the key's expiry to the record's `expires` with
 *	PEXPIREAT (absolute time, so a slow reply does not stretch it; an
 *	`expires` beyond REDIS_EXPIRES_MAX, like the whitelist's INT64_MAX,
 *	means no expiry). Redis deletes expired keys itself: store_expire()
 *	removes nothing. rmw also treats a record whose `expires` is before its
 *	`now` as absent, as LMDB does, in case the clocks of the hosts differ.
 *
 * READ-MODIFY-WRITE (optimistic compare-and-set)
 *	One Lua script (CAS_SCRIPT) does the whole server side of a write: it
 *	compares the key's current value with the one the client expects
 *	(absent = empty string) and, only if they are equal, applies the
 *	client's verdict (SET + PEXPIREAT, or DEL); otherwise it changes
 *	nothing and returns the current value (0 when absent). Redis runs a
 *	script atomically, so two daemons can never both write over the same
 *	old value. The greylist rules stay in C (the rmw function):
 *	1. The first attempt does not read first: it GUESSES the value (absent
 *	   for a key this process has no operation on), runs fn on the guess
 *	   and sends the result at once: the script, or, when fn says KEEP, a
 *	   plain GET compared with the guess (cheaper for Redis than a script,
 *	   same meaning). A new key (every first attempt) is settled in ONE
 *	   round trip.
 *	2. A mismatch returns the current value, read atomically, so it serves
 *	   as the read: fn runs again on it; KEEP is then final at once
 *	   (nothing to write), otherwise the script is sent with that value as
 *	   expected. An existing key takes two round trips, no more than GET +
 *	   compare-and-set would.
 *	3. A conflict (another daemon wrote in between) repeats step 2, at most
 *	   REDIS_CAS_ATTEMPTS_MAX times in all; then the operation fails (-1).
 *	So simultaneous first attempts at two MX hosts agree on one first_seen:
 *	the loser's script sees the winner's record and fn re-runs on it.
 *	The script goes by EVALSHA (loaded with SCRIPT LOAD at each connect);
 *	a NOSCRIPT reply (script cache flushed, failover) resends that attempt
 *	with EVAL, which also caches it again.
 *
 * ONE KEY, MANY OPERATIONS (struct redis_slot)
 *	Operations of this process on one key (a busy client network's
 *	auto-whitelist record) would conflict with each other if each guessed
 *	independently. Instead, while operations on a key are in flight, a new
 *	one guesses the value the key will hold once those have applied (the
 *	prediction) and is pipelined right behind them: Redis runs one
 *	connection's commands in order, so when nobody else writes, every
 *	operation takes one round trip and fn runs once. The first mismatch
 *	on a key (another daemon wrote) switches it to serialized mode: its
 *	operations then run one at a time, each starting on the next loop turn
 *	after the previous one ends (so the other daemon's retry reaches Redis
 *	before our next write and neither can starve the other), until the
 *	queue drains. The slot is freed when the key has no operation left.
 *
 * ASYNCHRONY, TIMEOUTS, RECONNECTION
 *	rmw runs on one non-blocking hiredis connection attached to the
 *	daemon's libevent loop. Each operation has a timer of redis_timeout;
 *	when it fires, the operation completes with -1 and the connection is
 *	dropped (a server that does not answer in time is treated as gone), so
 *	no request waits longer than the timeout. `done` is never called from
 *	inside store_rmw(): failures found there are delivered through the
 *	operation's timer, activated at once. A dropped or refused connection
 *	is retried after REDIS_BACKOFF_MIN_MS, doubling up to
 *	REDIS_BACKOFF_MAX_MS; meanwhile operations fail at once. Each connect
 *	sends AUTH and SELECT when configured, then SCRIPT LOAD; operations
 *	issued during the handshake wait for it (within their timeout).
 *	on_state reports each change of reachability once. A host name in the
 *	URL is resolved with a blocking getaddrinfo() at each connect: use an
 *	address or a unix socket on a busy daemon.
 *
 * SYNCHRONOUS CALLS
 *	get/put/del/foreach/stats use a second, blocking connection opened on
 *	first use, with redis_timeout for connect, reads and writes, and
 *	reopened after an error. foreach walks SCAN MATCH PREFIX+letter+":*"
 *	(COUNT REDIS_SCAN_COUNT) and fetches each batch with MGET; like SCAN it
 *	may report a key twice if Redis rehashes meanwhile. stats counts keys
 *	the same way (bytes = 0: Redis's memory is shared with others). flush
 *	does nothing (each reply means the write is done). In the daemon (an
 *	event_base was given), these fail at once while the async connection
 *	is down, so the periodic whitelist refresh never blocks the loop for a
 *	reconnect. Without an event_base, rmw runs the same compare-and-set
 *	loop on the blocking connection and calls `done` before returning.
 *
 * Nothing here logs; errors come back as "redis <what>: <reason>".
 */
#include "store/redis.h"
#include "util/str.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include <event2/event.h>
#include <hiredis/adapters/libevent.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include "util/sha256.h"
#include "util/xalloc.h"

/* Attempts of one rmw, the first (guessing "absent") included; beyond, two
 * or more daemons keep rewriting the key faster than we can, and the
 * operation fails rather than loop. Our own choice: a greylist key is
 * written by at most a few MX hosts at once. */
#define REDIS_CAS_ATTEMPTS_MAX 16
/* Reconnection backoff: first retry after 100 ms, doubling to 5 s, so a
 * restarted Redis is used again within 5 s without hammering a dead one. */
#define REDIS_BACKOFF_MIN_MS 100
#define REDIS_BACKOFF_MAX_MS 5000
/* Longest redis_prefix: our own bound, far above any sensible name. */
#define REDIS_PREFIX_MAX 128
/* Longest Redis key: prefix, table letter, ':' and a raw store key. */
#define REDIS_RKEY_MAX (REDIS_PREFIX_MAX + 2 + STORE_KEY_MAX)
/* Hex digits of a hashed key (HMAC-SHA256). */
#define REDIS_HASH_HEX ((size_t)2 * SHA256_DIGEST_SIZE)
/* Longest value accepted back from Redis: a record is STORE_REC_SIZE; a
 * longer value under our prefix is not ours and fails the operation. */
#define REDIS_VALUE_MAX 64
/* Keys per SCAN step: Redis's documented default is 10, which makes many
 * round trips; 1000 keeps each step well under a millisecond of server
 * time. */
#define REDIS_SCAN_COUNT "1000"
/* `expires` beyond 9999-12-31T23:59:59Z means "never" (no TTL); this also
 * keeps expires * 1000 far from int64 overflow. */
#define REDIS_EXPIRES_MAX INT64_C(253402300799)
/* Highest SELECT index accepted in the URL: Redis has no hard limit
 * (`databases`, default 16); a bound keeps the parse simple. */
#define REDIS_DB_MAX 65535
/* Default port (redis.conf). */
#define REDIS_DEFAULT_PORT 6379
/* Buckets of the table of keys with operations in flight: a power of two,
 * sized for a few thousand concurrent requests. */
#define REDIS_SLOT_BUCKETS 4096
/* Last values seen, for guessing (see ONE KEY, MANY OPERATIONS): a
 * direct-mapped table of this many entries of 48 bytes (3 MiB), indexed
 * by the key's hash. A wrong or stale entry costs the round trip that a
 * guess of "absent" would; it never changes a result, because the
 * compare-and-set checks every guess. 64 Ki entries remember the last
 * hour's triplets of an MX that sees ~18 new ones a second. */
#define REDIS_GUESS_ENTRIES 65536
/* Length of an error text kept with an operation. */
#define REDIS_ERR_MAX 256

/*
 * KEYS[1] key; ARGV[1] expected value ('' = absent); ARGV[2] mode: S set,
 * D delete, K compare only, P put without comparing; ARGV[3] value;
 * ARGV[4] PEXPIREAT time in ms ('0' = no expiry).
 * Returns 1 when applied, else the current value, or 0 when it is absent.
 */
static const char CAS_SCRIPT[] =
    "local cur = redis.call('GET', KEYS[1])\n"
    "if ARGV[2] ~= 'P' then\n"
    "  if cur == false then cur = '' end\n"
    "  if cur ~= ARGV[1] then\n"
    "    if cur == '' then return 0 end\n"
    "    return cur\n"
    "  end\n"
    "end\n"
    "if ARGV[2] == 'S' or ARGV[2] == 'P' then\n"
    "  redis.call('SET', KEYS[1], ARGV[3])\n"
    "  if ARGV[4] ~= '0' then redis.call('PEXPIREAT', KEYS[1], ARGV[4]) end\n"
    "elseif ARGV[2] == 'D' then\n"
    "  redis.call('DEL', KEYS[1])\n"
    "end\n"
    "return 1\n";

static const char table_letter[STORE_NTABLES] = {
    [STORE_TRIPLETS] = 't',
    [STORE_CLIENTS] = 'c',
    [STORE_WHITELIST] = 'w',
};

enum conn_state { CONN_DOWN, CONN_CONNECTING, CONN_READY };

struct redis_target {
	char *host; /* TCP, or NULL */
	int port;
	char *path; /* unix socket, or NULL */
	char *user; /* NULL: AUTH with the password alone */
	char *password;
	int db;
};

struct redis_op;

/*
 * This process's operations on one key. Normally they are pipelined: each
 * new one runs fn on `guess` (the value Redis will hold once our earlier
 * operations on the key have applied) and is sent at once, so a hot key
 * costs one round trip per operation. After a mismatch (another daemon
 * wrote) the key is `serialized`: operations run one at a time from a
 * queue until it drains, so two daemons cannot starve each other.
 */
struct redis_slot {
	struct redis_slot *next;	/* hash chain */
	struct redis_op *running;	/* serialized: the one in progress */
	struct redis_op *qhead, *qtail; /* serialized: waiting */
	unsigned chain; /* pipelined operations awaiting replies */
	bool serialized;
	unsigned version; /* bumped when guess changes by a reply */
	uint64_t hash;
	unsigned char guess[REDIS_VALUE_MAX];
	size_t guesslen; /* 0: absent */
	size_t keylen;
	char key[];
};

struct redis_guess {
	uint64_t tag; /* hash of the key; 0: empty */
	uint8_t len;  /* 0: absent, else STORE_REC_SIZE */
	unsigned char v[STORE_REC_SIZE];
};
_Static_assert(sizeof(struct redis_guess) <= 48, "guess entry grew");

struct redis_store {
	struct store base;
	struct event_base *evbase;
	struct redis_target tgt;
	char *prefix;
	size_t prefixlen;
	bool hash_keys;
	struct hmac_sha256_key hkey; /* key_secret, prepared */
	struct timeval tv;
	const struct timeval *op_tv; /* tv as a libevent common timeout */
	void (*on_state)(void *arg, bool up, const char *why);
	void *state_arg;
	bool reported_up;
	/* asynchronous side */
	redisAsyncContext *ac;
	enum conn_state state;
	char sha[41];
	struct event *reconnect_ev;
	struct event *handshake_ev;
	int backoff_ms;
	struct redis_op *ops;	/* every live operation */
	struct redis_op *queue; /* waiting for the handshake, FIFO */
	struct redis_op *queue_tail;
	char drop_reason[REDIS_ERR_MAX];
	bool closing;
	struct redis_slot *slots[REDIS_SLOT_BUCKETS];
	struct redis_guess *guesses; /* REDIS_GUESS_ENTRIES */
	/* synchronous side */
	redisContext *sc;
	uint64_t errors;
};

struct redis_op {
	struct redis_store *s;
	struct redis_op *prev, *next;	/* s->ops */
	struct redis_op *qprev, *qnext; /* s->queue */
	struct redis_slot *slot;	/* once begun */
	struct redis_op *wnext;		/* slot->qhead list */
	struct event *timer;
	store_rmw_fn fn;
	void *fn_arg;
	store_done_fn done;
	void *done_arg;
	int64_t now;
	uint64_t hash; /* key_hash64(key) */
	unsigned attempts;
	unsigned version; /* slot->version when expect was read */
	bool queued;	  /* on s->queue (handshake) */
	bool inq;	  /* on slot->qhead */
	bool chained;	  /* sent pipelined; counted in slot->chain */
	bool confirmed;	  /* expect was read from Redis by this op */
	bool inflight;	  /* a hiredis callback with this op is pending */
	bool finished;	  /* done has been called */
	bool failing;	  /* the timer delivers a failure in err */
	bool use_eval;	  /* NOSCRIPT seen: send the script itself */
	bool starting;	  /* the timer starts op (its turn on the key) */
	struct timeval deadline; /* when the timer gives up */
	char mode[2];
	unsigned char expect[REDIS_VALUE_MAX];
	size_t expectlen; /* 0: absent */
	unsigned char value[STORE_REC_SIZE];
	char pexpire[24];
	char err[REDIS_ERR_MAX];
	size_t keylen;
	char key[]; /* the Redis key */
};

/* ---------------------------------------------------------------- */
/* Configuration: URL, keys. */

static void set_err(char *err, size_t errsize, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void set_err(char *err, size_t errsize, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL || errsize == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errsize, fmt, ap);
	va_end(ap);
}


/* Copies s[0..n) decoding %XX (RFC 3986 section 2.1). NULL if malformed. */
static char *pct_decode(const char *s, size_t n)
{
	char *out = xmalloc(n + 1);
	size_t o = 0;

	for (size_t i = 0; i < n; i++) {
		if (s[i] != '%') {
			out[o++] = s[i];
			continue;
		}
		int hi = i + 2 < n ? str_hexval((unsigned char)s[i + 1]) : -1;
		int lo = i + 2 < n ? str_hexval((unsigned char)s[i + 2]) : -1;
		if (hi < 0 || lo < 0) {
			free(out);
			return NULL;
		}
		out[o++] = (char)(hi * 16 + lo);
		i += 2;
	}
	out[o] = '\0';
	return out;
}

static int parse_uint(const char *s, size_t n, long max, long *out)
{
	long v = 0;

	if (n == 0)
		return -1;
	for (size_t i = 0; i < n; i++) {
		if (!isdigit((unsigned char)s[i]))
			return -1;
		v = v * 10 + (s[i] - '0');
		if (v > max)
			return -1;
	}
	*out = v;
	return 0;
}

static void target_free(struct redis_target *t)
{
	free(t->host);
	free(t->path);
	free(t->user);
	free(t->password);
	memset(t, 0, sizeof(*t));
}

/* "redis://[user[:password]@]host[:port][/db]" or "unix:/path[?db=N]". */
static int parse_url(const char *url, struct redis_target *t, char *err,
		     size_t errsize)
{
	long v;

	memset(t, 0, sizeof(*t));
	t->port = REDIS_DEFAULT_PORT;
	if (url == NULL || *url == '\0') {
		set_err(err, errsize, "redis: no URL (redis = ...)");
		return -1;
	}
	if (strncmp(url, "unix:", 5) == 0) {
		const char *p = url + 5, *q = strchr(p, '?');
		size_t n = q ? (size_t)(q - p) : strlen(p);
		if (n == 0 || p[0] != '/') {
			set_err(err, errsize,
				"redis URL \"%.100s\": unix: needs an absolute "
				"path",
				url);
			return -1;
		}
		if (q != NULL) {
			if (strncmp(q, "?db=", 4) != 0 ||
			    parse_uint(q + 4, strlen(q + 4), REDIS_DB_MAX,
				       &v) != 0) {
				set_err(err, errsize,
					"redis URL \"%.100s\": expected "
					"?db=N after the path",
					url);
				return -1;
			}
			t->db = (int)v;
		}
		t->path = xstrndup(p, n);
		return 0;
	}
	if (strncmp(url, "redis://", 8) != 0) {
		set_err(err, errsize,
			"redis URL \"%.100s\": expected redis://host:port/db "
			"or unix:/path",
			url);
		return -1;
	}
	const char *p = url + 8;
	const char *end = p + strcspn(p, "/");
	const char *at = NULL;
	for (const char *c = p; c < end; c++)
		if (*c == '@')
			at = c; /* the last '@': a password may hold one */
	if (at != NULL) {
		const char *colon = memchr(p, ':', (size_t)(at - p));
		if (colon != NULL) {
			if (colon > p)
				t->user = pct_decode(p, (size_t)(colon - p));
			t->password =
			    pct_decode(colon + 1, (size_t)(at - colon - 1));
			if ((colon > p && t->user == NULL) ||
			    t->password == NULL)
				goto bad;
		} else {
			/* "redis://password@host": the password alone, as
			 * older clients write it. */
			t->password = pct_decode(p, (size_t)(at - p));
			if (t->password == NULL)
				goto bad;
		}
		p = at + 1;
	}
	const char *hend;
	if (*p == '[') {
		const char *rb = memchr(p, ']', (size_t)(end - p));
		if (rb == NULL)
			goto bad;
		t->host = xstrndup(p + 1, (size_t)(rb - p - 1));
		hend = rb + 1;
	} else {
		hend = p;
		while (hend < end && *hend != ':')
			hend++;
		t->host = xstrndup(p, (size_t)(hend - p));
	}
	if (t->host[0] == '\0')
		goto bad;
	if (hend < end) {
		if (*hend != ':' ||
		    parse_uint(hend + 1, (size_t)(end - hend - 1), 65535, &v) !=
			0 ||
		    v == 0)
			goto bad;
		t->port = (int)v;
	}
	if (*end == '/' && end[1] != '\0') {
		if (parse_uint(end + 1, strlen(end + 1), REDIS_DB_MAX, &v) != 0)
			goto bad;
		t->db = (int)v;
	}
	return 0;
bad:
	target_free(t);
	set_err(err, errsize,
		"redis URL \"%.100s\": expected "
		"redis://[user:password@]host[:port][/db]",
		url);
	return -1;
}

static bool is_digest(const void *key, size_t keylen)
{
	const unsigned char *k = key;

	if (keylen != REDIS_HASH_HEX)
		return false;
	for (size_t i = 0; i < keylen; i++)
		if (!((k[i] >= '0' && k[i] <= '9') ||
		      (k[i] >= 'a' && k[i] <= 'f')))
			return false;
	return true;
}

/* Writes the Redis key of (t, key) to out (REDIS_RKEY_MAX bytes); returns
 * its length, or 0 if the key is empty or too long. */
static size_t key_build(const struct redis_store *s, enum store_table t,
			const void *key, size_t keylen, char *out)
{
	static const char hex[] = "0123456789abcdef";
	size_t n = s->prefixlen;

	if ((unsigned)t >= STORE_NTABLES || keylen == 0 ||
	    keylen > STORE_KEY_MAX)
		return 0;
	memcpy(out, s->prefix, n);
	out[n++] = table_letter[t];
	out[n++] = ':';
	if (s->hash_keys && t != STORE_WHITELIST && !is_digest(key, keylen)) {
		unsigned char d[SHA256_DIGEST_SIZE];
		hmac_sha256_with(&s->hkey, key, keylen, d);
		for (size_t i = 0; i < sizeof(d); i++) {
			out[n++] = hex[d[i] >> 4];
			out[n++] = hex[d[i] & 15];
		}
		return n;
	}
	memcpy(out + n, key, keylen);
	return n + keylen;
}

/* PEXPIREAT argument for expires (seconds): "0" for never. */
static void pexpire_arg(int64_t expires, char out[24])
{
	if (expires > REDIS_EXPIRES_MAX)
		snprintf(out, 24, "0");
	else if (expires < 1)
		snprintf(out, 24, "1"); /* already past: Redis deletes it */
	else
		snprintf(out, 24, "%lld", (long long)expires * 1000);
}

/* Decodes a value as rmw sees it: NULL-equivalent (false) when absent,
 * undecodable or expired before now. */
static bool value_rec(struct redis_store *s, const unsigned char *v, size_t len,
		      int64_t now, struct store_rec *out)
{
	if (len == 0)
		return false;
	if (!store_rec_decode(v, len, out)) {
		s->errors++;
		return false;
	}
	return out->expires >= now;
}

/* Runs fn on the expected value; fills mode, value and pexpire. */
static enum store_verdict run_fn(struct redis_store *s, store_rmw_fn fn,
				 void *fn_arg, int64_t now,
				 const unsigned char *expect, size_t expectlen,
				 char mode[2], unsigned char *value,
				 char pexpire[24])
{
	struct store_rec old, nw;
	bool have = value_rec(s, expect, expectlen, now, &old);
	enum store_verdict v;

	memset(&nw, 0, sizeof(nw));
	v = fn(fn_arg, have ? &old : NULL, &nw);
	mode[1] = '\0';
	switch (v) {
	case STORE_WRITE:
		mode[0] = 'S';
		store_rec_encode(&nw, value);
		pexpire_arg(nw.expires, pexpire);
		break;
	case STORE_DELETE:
		mode[0] = 'D';
		pexpire[0] = '0';
		pexpire[1] = '\0';
		break;
	case STORE_KEEP:
	default:
		v = STORE_KEEP;
		mode[0] = 'K';
		pexpire[0] = '0';
		pexpire[1] = '\0';
		break;
	}
	return v;
}

/* ---------------------------------------------------------------- */
/* Asynchronous operations. */

static void report_state(struct redis_store *s, bool up, const char *why)
{
	if (up == s->reported_up)
		return;
	s->reported_up = up;
	if (s->on_state != NULL)
		s->on_state(s->state_arg, up, why);
}

static void op_free(struct redis_op *op)
{
	struct redis_store *s = op->s;

	if (op->prev)
		op->prev->next = op->next;
	else
		s->ops = op->next;
	if (op->next)
		op->next->prev = op->prev;
	event_free(op->timer);
	free(op);
}

static void queue_remove(struct redis_op *op)
{
	struct redis_store *s = op->s;

	if (!op->queued)
		return;
	if (op->qprev)
		op->qprev->qnext = op->qnext;
	else
		s->queue = op->qnext;
	if (op->qnext)
		op->qnext->qprev = op->qprev;
	else
		s->queue_tail = op->qprev;
	op->qprev = op->qnext = NULL;
	op->queued = false;
}

static void queue_push(struct redis_op *op)
{
	struct redis_store *s = op->s;

	op->qprev = s->queue_tail;
	op->qnext = NULL;
	if (s->queue_tail)
		s->queue_tail->qnext = op;
	else
		s->queue = op;
	s->queue_tail = op;
	op->queued = true;
}

/* FNV-1a (64-bit) of a Redis key, for the slot and guess tables; never 0
 * (0 marks an empty guess entry). */
static uint64_t key_hash64(const char *key, size_t len)
{
	uint64_t h = UINT64_C(14695981039346656037);

	for (size_t i = 0; i < len; i++) {
		h ^= (unsigned char)key[i];
		h *= UINT64_C(1099511628211);
	}
	return h != 0 ? h : 1;
}

static size_t slot_bucket(uint64_t hash)
{
	return (size_t)(hash & (REDIS_SLOT_BUCKETS - 1));
}

/* Remembers that the key of hash holds v (len 0: absent). */
static void guess_put(struct redis_store *s, uint64_t hash,
		      const unsigned char *v, size_t len)
{
	struct redis_guess *g = &s->guesses[hash & (REDIS_GUESS_ENTRIES - 1)];

	if (len != 0 && len != STORE_REC_SIZE)
		return;
	g->tag = hash;
	g->len = (uint8_t)len;
	memcpy(g->v, v, len);
}

/* The last value seen at the key of hash, or absent if none. */
static void guess_get(const struct redis_store *s, uint64_t hash,
		      unsigned char *out, size_t *outlen)
{
	const struct redis_guess *g =
	    &s->guesses[hash & (REDIS_GUESS_ENTRIES - 1)];

	*outlen = 0;
	if (g->tag == hash) {
		memcpy(out, g->v, g->len);
		*outlen = g->len;
	}
}

/* The slot of op's key, created (pipelined, guessing the last value seen)
 * if none. */
static struct redis_slot *slot_get(struct redis_store *s,
				   const struct redis_op *op)
{
	size_t b = slot_bucket(op->hash);
	struct redis_slot *sl;

	for (sl = s->slots[b]; sl != NULL; sl = sl->next)
		if (sl->keylen == op->keylen &&
		    memcmp(sl->key, op->key, op->keylen) == 0)
			return sl;
	sl = xcalloc(1, sizeof(*sl) + op->keylen);
	sl->keylen = op->keylen;
	sl->hash = op->hash;
	memcpy(sl->key, op->key, op->keylen);
	guess_get(s, op->hash, sl->guess, &sl->guesslen);
	sl->next = s->slots[b];
	s->slots[b] = sl;
	return sl;
}

static void slot_free(struct redis_store *s, struct redis_slot *sl)
{
	struct redis_slot **pp = &s->slots[slot_bucket(sl->hash)];

	while (*pp != sl)
		pp = &(*pp)->next;
	*pp = sl->next;
	free(sl);
}

static void slot_enqueue(struct redis_slot *sl, struct redis_op *op)
{
	op->wnext = NULL;
	if (sl->qtail)
		sl->qtail->wnext = op;
	else
		sl->qhead = op;
	sl->qtail = op;
	op->inq = true;
}

static void slot_dequeue(struct redis_slot *sl, struct redis_op *op)
{
	struct redis_op *p = NULL, *c = sl->qhead;

	while (c != NULL && c != op) {
		p = c;
		c = c->wnext;
	}
	if (c == NULL)
		return;
	if (p)
		p->wnext = op->wnext;
	else
		sl->qhead = op->wnext;
	if (sl->qtail == op)
		sl->qtail = p;
	op->wnext = NULL;
	op->inq = false;
}

/*
 * After a change in the slot: start the next queued operation (on the next
 * loop turn: a daemon whose compare-and-set on this key just failed gets
 * its retry to Redis before our next write, so a busy key cannot starve
 * it), or go back to pipelining, or free the slot when nothing uses it.
 */
static void slot_settle(struct redis_store *s, struct redis_slot *sl)
{
	if (sl->running != NULL)
		return;
	if (sl->qhead != NULL) {
		struct redis_op *op = sl->qhead;
		slot_dequeue(sl, op);
		sl->running = op;
		op->starting = true;
		event_active(op->timer, EV_TIMEOUT, 1);
		return;
	}
	sl->serialized = false;
	if (sl->chain == 0)
		slot_free(s, sl);
}

/* The value Redis holds once op's compare-and-set has applied. */
static void op_result(const struct redis_op *op, unsigned char *out,
		      size_t *outlen)
{
	switch (op->mode[0]) {
	case 'S':
		memcpy(out, op->value, STORE_REC_SIZE);
		*outlen = STORE_REC_SIZE;
		break;
	case 'D':
		*outlen = 0;
		break;
	default:
		memcpy(out, op->expect, op->expectlen);
		*outlen = op->expectlen;
		break;
	}
}

/* Completes op once; it is freed now, or by its pending hiredis callback.
 * It leaves its slot first, so that the key's next operation is under
 * way before `done` runs. */
static void op_finish(struct redis_op *op, int status, const char *err)
{
	struct redis_slot *sl = op->slot;

	if (op->finished)
		return;
	op->finished = true;
	queue_remove(op);
	event_del(op->timer);
	if (sl != NULL) {
		if (op->chained) {
			op->chained = false;
			sl->chain--;
			/* Whether a failed one applied is unknown. */
			if (status != 0)
				sl->serialized = true;
		} else if (sl->running == op) {
			sl->running = NULL;
			if (status == 0)
				op_result(op, sl->guess, &sl->guesslen);
			sl->version++;
		} else if (op->inq) {
			slot_dequeue(sl, op);
		}
		op->slot = NULL;
		slot_settle(op->s, sl);
	}
	if (status == 0) {
		unsigned char v[REDIS_VALUE_MAX];
		size_t len;
		op_result(op, v, &len);
		guess_put(op->s, op->hash, v, len);
	} else {
		op->s->errors++;
	}
	op->done(op->done_arg, status, status != 0 ? err : NULL);
	if (!op->inflight)
		op_free(op);
}

/* Completes op with -1 from the loop, never from the caller's stack. */
static void op_fail_later(struct redis_op *op, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void op_fail_later(struct redis_op *op, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(op->err, sizeof(op->err), fmt, ap);
	va_end(ap);
	queue_remove(op);
	op->failing = true;
	event_active(op->timer, EV_TIMEOUT, 1);
}

static void conn_drop(struct redis_store *s, const char *why, bool free_ac);
static void op_reply(redisAsyncContext *ac, void *r, void *priv);

static void op_send(struct redis_op *op)
{
	struct redis_store *s = op->s;
	const char *argv[8];
	size_t lens[8];

	if (s->state != CONN_READY || s->ac == NULL) {
		op_fail_later(op, "redis: %s", s->drop_reason);
		return;
	}
	if (op->mode[0] == 'K') {
		/* Compare only: a plain GET is the same check, cheaper for
		 * Redis than a script (op_reply compares). */
		argv[0] = "GET";
		lens[0] = 3;
		argv[1] = op->key;
		lens[1] = op->keylen;
		if (redisAsyncCommandArgv(s->ac, op_reply, op, 2, argv, lens) !=
		    REDIS_OK) {
			op_fail_later(op, "redis: cannot send (connection "
					  "closing)");
			return;
		}
		op->inflight = true;
		return;
	}
	argv[0] = op->use_eval ? "EVAL" : "EVALSHA";
	lens[0] = strlen(argv[0]);
	argv[1] = op->use_eval ? CAS_SCRIPT : s->sha;
	lens[1] = op->use_eval ? sizeof(CAS_SCRIPT) - 1 : strlen(s->sha);
	argv[2] = "1";
	lens[2] = 1;
	argv[3] = op->key;
	lens[3] = op->keylen;
	argv[4] = (const char *)op->expect;
	lens[4] = op->expectlen;
	argv[5] = op->mode;
	lens[5] = 1;
	argv[6] = (const char *)op->value;
	lens[6] = op->mode[0] == 'S' ? STORE_REC_SIZE : 0;
	argv[7] = op->pexpire;
	lens[7] = strlen(op->pexpire);
	if (redisAsyncCommandArgv(s->ac, op_reply, op, 8, argv, lens) !=
	    REDIS_OK) {
		op_fail_later(op, "redis: cannot send (connection closing)");
		return;
	}
	op->inflight = true;
}

/* Runs fn on op->expect; returns true if that settles op: the value was
 * read from Redis (confirmed) and fn leaves it as it is. */
static bool op_compute(struct redis_op *op, bool confirmed)
{
	enum store_verdict v =
	    run_fn(op->s, op->fn, op->fn_arg, op->now, op->expect,
		   op->expectlen, op->mode, op->value, op->pexpire);

	return confirmed &&
	       (v == STORE_KEEP || (v == STORE_DELETE && op->expectlen == 0));
}

/* One step of a serialized (running) operation on op->expect. */
static void op_run(struct redis_op *op, bool confirmed)
{
	if (op_compute(op, confirmed)) {
		op_finish(op, 0, NULL);
		return;
	}
	if (++op->attempts > REDIS_CAS_ATTEMPTS_MAX) {
		snprintf(
		    op->err, sizeof(op->err),
		    "redis: key rewritten concurrently %d times, giving up",
		    REDIS_CAS_ATTEMPTS_MAX);
		op_finish(op, -1, op->err);
		return;
	}
	op_send(op);
}

/* A new operation, connection ready: pipelined on the key's guess, or
 * queued behind the key's serialized operations. */
static void op_begin(struct redis_op *op)
{
	struct redis_store *s = op->s;
	struct redis_slot *sl = slot_get(s, op);

	op->slot = sl;
	if (sl->serialized) {
		op->version = sl->version - 1; /* take the guess at start */
		slot_enqueue(sl, op);
		slot_settle(s, sl);
		return;
	}
	memcpy(op->expect, sl->guess, sl->guesslen);
	op->expectlen = sl->guesslen;
	op->chained = true;
	sl->chain++;
	op_compute(op, false);
	op->attempts = 1;
	op_result(op, sl->guess, &sl->guesslen);
	op_send(op);
}

/* Runs op now, or queues it for the handshake, or fails it (down). */
static void op_start(struct redis_op *op)
{
	switch (op->s->state) {
	case CONN_READY:
		op_begin(op);
		return;
	case CONN_CONNECTING:
		queue_push(op);
		return;
	case CONN_DOWN:
		op_fail_later(op, "redis: %s", op->s->drop_reason);
		return;
	}
}

/* The script found another value (len 0: absent) than op expected. */
static void op_mismatch(struct redis_op *op, const char *v, size_t len)
{
	struct redis_slot *sl = op->slot;

	memcpy(op->expect, v, len);
	op->expectlen = len;
	guess_put(op->s, op->hash, op->expect, len);
	if (!op->chained) {
		op_run(op, true); /* the running one: retry at once */
		return;
	}
	/* A pipelined one: the key is contended; serialize it. */
	op->chained = false;
	sl->chain--;
	sl->serialized = true;
	memcpy(sl->guess, v, len);
	sl->guesslen = len;
	sl->version++;
	if (sl->running == NULL && sl->qhead == NULL) {
		/* Nothing of ours waits on the key: retry at once. */
		sl->running = op;
		op_run(op, true);
		return;
	}
	if (op_compute(op, true)) {
		/* A read: final on the value just read. */
		op_finish(op, 0, NULL);
		return;
	}
	op->confirmed = true;
	op->version = sl->version;
	slot_enqueue(sl, op);
	slot_settle(op->s, sl);
}

static void op_reply(redisAsyncContext *ac, void *r, void *priv)
{
	struct redis_op *op = priv;
	struct redis_store *s = op->s;
	redisReply *reply = r;

	(void)ac;
	op->inflight = false;
	if (op->finished || s->closing) {
		op_free(op);
		return;
	}
	if (reply == NULL) {
		/* hiredis fails the pending callbacks before it reports the
		 * disconnection: the reason may not be known yet. */
		op_finish(op, -1,
			  s->state == CONN_READY ? "redis: connection lost"
						 : s->drop_reason);
		return;
	}
	switch (reply->type) {
	case REDIS_REPLY_ERROR:
		if (!op->use_eval && strncmp(reply->str, "NOSCRIPT", 8) == 0) {
			op->use_eval = true;
			op_send(op);
			return;
		}
		snprintf(op->err, sizeof(op->err), "redis: %.200s", reply->str);
		op_finish(op, -1, op->err);
		return;
	case REDIS_REPLY_NIL:
		if (op->mode[0] != 'K')
			break;
		if (op->expectlen == 0)
			op_finish(op, 0, NULL);
		else
			op_mismatch(op, "", 0);
		return;
	case REDIS_REPLY_INTEGER:
		if (reply->integer == 1)
			op_finish(op, 0, NULL);
		else
			op_mismatch(op, "", 0);
		return;
	case REDIS_REPLY_STRING:
		if (reply->len == 0 || reply->len > sizeof(op->expect)) {
			snprintf(op->err, sizeof(op->err),
				 "redis: foreign value of %zu bytes at a "
				 "greyspf key",
				 (size_t)reply->len);
			op_finish(op, -1, op->err);
			return;
		}
		if (op->mode[0] == 'K' && reply->len == op->expectlen &&
		    memcmp(reply->str, op->expect, reply->len) == 0)
			op_finish(op, 0, NULL); /* GET: as expected */
		else
			op_mismatch(op, reply->str, reply->len);
		return;
	default:
		break;
	}
	snprintf(op->err, sizeof(op->err), "redis: unexpected reply type %d",
		 reply->type);
	op_finish(op, -1, op->err);
}

static void op_timer(evutil_socket_t fd, short what, void *arg)
{
	struct redis_op *op = arg;
	struct redis_store *s = op->s;
	long long ms = (long long)s->tv.tv_sec * 1000 + s->tv.tv_usec / 1000;
	char why[REDIS_ERR_MAX];

	(void)fd;
	(void)what;
	if (op->failing) {
		op_finish(op, -1, op->err);
		return;
	}
	if (op->starting) {
		/* Its turn on the key. event_active() dropped the timeout:
		 * arm what is left. */
		struct redis_slot *sl = op->slot;
		struct timeval now, left = {0, 0};
		op->starting = false;
		event_base_gettimeofday_cached(s->evbase, &now);
		if (op->deadline.tv_sec > now.tv_sec ||
		    (op->deadline.tv_sec == now.tv_sec &&
		     op->deadline.tv_usec > now.tv_usec))
			timersub(&op->deadline, &now, &left);
		evtimer_add(op->timer, &left);
		if (!op->confirmed || op->version != sl->version) {
			memcpy(op->expect, sl->guess, sl->guesslen);
			op->expectlen = sl->guesslen;
			op->confirmed = false;
		}
		op_run(op, op->confirmed);
		return;
	}
	if (!op->inflight) {
		/* Waiting for the handshake or for its turn on the key. */
		snprintf(op->err, sizeof(op->err),
			 "redis: no reply within %lld ms (%s)", ms,
			 op->queued ? "not connected" : "key busy");
		op_finish(op, -1, op->err);
		return;
	}
	/* No reply in time: answer now, then drop the connection (which frees
	 * op through its callback). Nothing may touch op after conn_drop. */
	snprintf(why, sizeof(why), "no reply within %lld ms", ms);
	snprintf(op->err, sizeof(op->err), "redis: %.200s", why);
	op_finish(op, -1, op->err);
	conn_drop(s, why, true);
}

static void conn_start(struct redis_store *s);

static void reconnect_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	conn_start(arg);
}

static void handshake_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	conn_drop(arg, "connect or handshake timed out", true);
}

/*
 * The connection is gone (or given up): report it, fail the waiting
 * operations, free the context unless hiredis is about to (free_ac false),
 * and schedule the next attempt.
 */
static void conn_drop(struct redis_store *s, const char *why, bool free_ac)
{
	redisAsyncContext *ac = s->ac;
	char reason[REDIS_ERR_MAX];

	if (s->state == CONN_DOWN || s->closing)
		return;
	snprintf(reason, sizeof(reason), "%s", why); /* why may be ac's */
	s->ac = NULL;
	s->state = CONN_DOWN;
	snprintf(s->drop_reason, sizeof(s->drop_reason),
		 "Redis unreachable: %.200s", reason);
	event_del(s->handshake_ev);
	while (s->queue != NULL)
		op_fail_later(s->queue, "redis: %s", s->drop_reason);
	report_state(s, false, reason);
	/* In-flight operations complete with -1 from their callbacks, with
	 * NULL replies, now or (inside a hiredis callback) right after it. */
	if (ac != NULL && free_ac)
		redisAsyncFree(ac);
	struct timeval tv = {s->backoff_ms / 1000,
			     (suseconds_t)(s->backoff_ms % 1000) * 1000};
	evtimer_add(s->reconnect_ev, &tv);
	s->backoff_ms = s->backoff_ms * 2 > REDIS_BACKOFF_MAX_MS
			    ? REDIS_BACKOFF_MAX_MS
			    : s->backoff_ms * 2;
}

static void on_connect(const redisAsyncContext *ac, int status)
{
	struct redis_store *s = ac->data;

	if (ac != s->ac || status == REDIS_OK)
		return;
	/* hiredis frees the context after this callback. */
	conn_drop(s, ac->errstr[0] ? ac->errstr : "connect failed", false);
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
	struct redis_store *s = ac->data;

	(void)status;
	if (ac != s->ac)
		return;
	conn_drop(s,
		  ac->err && ac->errstr[0] ? ac->errstr : "connection closed",
		  false);
}

/* Reply to AUTH or SELECT: an error ends the connection. The callbacks'
 * type is hiredis's redisCallbackFn, hence the non-const ac. */
// cppcheck-suppress constParameter
static void handshake_reply(redisAsyncContext *ac, void *r, void *priv)
{
	struct redis_store *s = priv;
	redisReply *reply = r;

	if (reply == NULL || ac != s->ac || s->closing)
		return;
	if (reply->type == REDIS_REPLY_ERROR) {
		char why[REDIS_ERR_MAX];
		snprintf(why, sizeof(why), "handshake: %.200s", reply->str);
		conn_drop(s, why, true);
	}
}

// cppcheck-suppress constParameter
static void script_loaded(redisAsyncContext *ac, void *r, void *priv)
{
	struct redis_store *s = priv;
	redisReply *reply = r;

	if (reply == NULL || ac != s->ac || s->closing ||
	    s->state != CONN_CONNECTING)
		return;
	if (reply->type != REDIS_REPLY_STRING ||
	    reply->len != sizeof(s->sha) - 1) {
		char why[REDIS_ERR_MAX];
		snprintf(why, sizeof(why), "SCRIPT LOAD: %.200s",
			 reply->type == REDIS_REPLY_ERROR ? reply->str
							  : "unexpected reply");
		conn_drop(s, why, true);
		return;
	}
	memcpy(s->sha, reply->str, sizeof(s->sha) - 1);
	s->sha[sizeof(s->sha) - 1] = '\0';
	s->state = CONN_READY;
	s->backoff_ms = REDIS_BACKOFF_MIN_MS;
	event_del(s->handshake_ev);
	report_state(s, true, "connected");
	while (s->queue != NULL && s->state == CONN_READY) {
		struct redis_op *op = s->queue;
		queue_remove(op);
		op_begin(op);
	}
}

/* Sends AUTH and SELECT as configured (async when ac, else returns argv). */
static int handshake_argv(const struct redis_target *t, int which,
			  const char *argv[3], size_t lens[3], char *dbbuf)
{
	if (which == 0) {
		if (t->password == NULL)
			return 0;
		int n = 0;
		argv[n++] = "AUTH";
		if (t->user != NULL)
			argv[n++] = t->user;
		argv[n++] = t->password;
		for (int i = 0; i < n; i++)
			lens[i] = strlen(argv[i]);
		return n;
	}
	if (t->db == 0)
		return 0;
	snprintf(dbbuf, 16, "%d", t->db);
	argv[0] = "SELECT";
	argv[1] = dbbuf;
	lens[0] = 6;
	lens[1] = strlen(dbbuf);
	return 2;
}

static void conn_start(struct redis_store *s)
{
	redisAsyncContext *ac;

	if (s->state != CONN_DOWN || s->closing)
		return;
	if (s->tgt.path != NULL)
		ac = redisAsyncConnectUnix(s->tgt.path);
	else
		ac = redisAsyncConnect(s->tgt.host, s->tgt.port);
	s->state = CONN_CONNECTING;
	if (ac == NULL || ac->err) {
		char why[REDIS_ERR_MAX];
		snprintf(why, sizeof(why), "%s",
			 ac ? ac->errstr : "out of memory");
		if (ac != NULL)
			redisAsyncFree(ac);
		conn_drop(s, why, false);
		return;
	}
	ac->data = s;
	if (redisLibeventAttach(ac, s->evbase) != REDIS_OK) {
		redisAsyncFree(ac);
		conn_drop(s, "cannot attach to the event loop", false);
		return;
	}
	redisAsyncSetConnectCallback(ac, on_connect);
	redisAsyncSetDisconnectCallback(ac, on_disconnect);
	s->ac = ac;
	evtimer_add(s->handshake_ev, &s->tv);
	for (int which = 0; which < 2; which++) {
		const char *argv[3];
		size_t lens[3];
		char dbbuf[16];
		int n = handshake_argv(&s->tgt, which, argv, lens, dbbuf);
		if (n > 0)
			redisAsyncCommandArgv(ac, handshake_reply, s, n, argv,
					      lens);
	}
	const char *largv[3] = {"SCRIPT", "LOAD", CAS_SCRIPT};
	size_t llens[3] = {6, 4, sizeof(CAS_SCRIPT) - 1};
	redisAsyncCommandArgv(ac, script_loaded, s, 3, largv, llens);
}

static void redis_rmw_sync(struct redis_store *s, const char *key,
			   size_t keylen, int64_t now, store_rmw_fn fn,
			   void *fn_arg, store_done_fn done, void *done_arg);

static void redis_rmw(struct store *st, enum store_table t, const void *key,
		      size_t keylen, int64_t now, store_rmw_fn fn, void *fn_arg,
		      store_done_fn done, void *done_arg)
{
	struct redis_store *s = (struct redis_store *)st;
	char rkey[REDIS_RKEY_MAX];
	size_t n = key_build(s, t, key, keylen, rkey);

	if (s->evbase == NULL) {
		if (n == 0) {
			s->errors++;
			done(done_arg, -1, "redis: bad table or key length");
			return;
		}
		redis_rmw_sync(s, rkey, n, now, fn, fn_arg, done, done_arg);
		return;
	}
	struct redis_op *op = xcalloc(1, sizeof(*op) + n + 1);
	op->s = s;
	op->fn = fn;
	op->fn_arg = fn_arg;
	op->done = done;
	op->done_arg = done_arg;
	op->now = now;
	memcpy(op->key, rkey, n);
	op->keylen = n;
	op->hash = key_hash64(rkey, n);
	op->timer = evtimer_new(s->evbase, op_timer, op);
	op->next = s->ops;
	if (s->ops)
		s->ops->prev = op;
	s->ops = op;
	evtimer_add(op->timer, s->op_tv);
	event_base_gettimeofday_cached(s->evbase, &op->deadline);
	timeradd(&op->deadline, &s->tv, &op->deadline);
	if (n == 0) {
		op_fail_later(op, "redis: bad table or key length");
		return;
	}
	op_start(op);
}

/* ---------------------------------------------------------------- */
/* Synchronous connection (command line, whitelist refresh). */

static redisContext *sync_conn(struct redis_store *s, char *err, size_t errsize)
{
	redisContext *c;

	if (s->sc != NULL && s->sc->err == 0)
		return s->sc;
	if (s->sc != NULL) {
		redisFree(s->sc);
		s->sc = NULL;
	}
	if (s->evbase != NULL && s->state == CONN_DOWN) {
		set_err(err, errsize, "redis: %s", s->drop_reason);
		return NULL;
	}
	if (s->tgt.path != NULL)
		c = redisConnectUnixWithTimeout(s->tgt.path, s->tv);
	else
		c = redisConnectWithTimeout(s->tgt.host, s->tgt.port, s->tv);
	if (c == NULL || c->err) {
		if (s->tgt.path != NULL)
			set_err(err, errsize, "redis connect %.200s: %s",
				s->tgt.path, c ? c->errstr : "out of memory");
		else
			set_err(err, errsize, "redis connect %.200s:%d: %s",
				s->tgt.host, s->tgt.port,
				c ? c->errstr : "out of memory");
		if (c != NULL)
			redisFree(c);
		return NULL;
	}
	redisSetTimeout(c, s->tv);
	for (int which = 0; which < 2; which++) {
		const char *argv[3];
		size_t lens[3];
		char dbbuf[16];
		int n = handshake_argv(&s->tgt, which, argv, lens, dbbuf);
		if (n == 0)
			continue;
		redisReply *r = redisCommandArgv(c, n, argv, lens);
		if (r == NULL || r->type == REDIS_REPLY_ERROR) {
			set_err(err, errsize, "redis %s: %.200s", argv[0],
				r ? r->str : c->errstr);
			if (r != NULL)
				freeReplyObject(r);
			redisFree(c);
			return NULL;
		}
		freeReplyObject(r);
	}
	s->sc = c;
	return c;
}

/* Runs one command; returns the reply (caller frees) or NULL with err. An
 * error reply is returned as NULL too. */
static redisReply *sync_cmd(struct redis_store *s, int argc, const char **argv,
			    const size_t *lens, char *err, size_t errsize)
{
	redisContext *c = sync_conn(s, err, errsize);
	redisReply *r;

	if (c == NULL) {
		s->errors++;
		return NULL;
	}
	r = redisCommandArgv(c, argc, argv, lens);
	if (r == NULL) {
		set_err(err, errsize, "redis %s: %s", argv[0],
			c->errstr[0] ? c->errstr : "no reply");
		redisFree(c);
		s->sc = NULL;
		s->errors++;
		return NULL;
	}
	if (r->type == REDIS_REPLY_ERROR) {
		set_err(err, errsize, "redis %s: %.200s", argv[0], r->str);
		freeReplyObject(r);
		s->errors++;
		return NULL;
	}
	return r;
}

/* The script on the blocking connection; returns the reply or NULL. */
static redisReply *sync_script(struct redis_store *s, const char *rkey,
			       size_t rkeylen, const unsigned char *expect,
			       size_t expectlen, const char *mode,
			       const unsigned char *value, const char *pexpire,
			       char *err, size_t errsize)
{
	const char *argv[8] = {
	    "EVAL", CAS_SCRIPT,		 "1",	 rkey, (const char *)expect,
	    mode,   (const char *)value, pexpire};
	size_t lens[8] = {4,
			  sizeof(CAS_SCRIPT) - 1,
			  1,
			  rkeylen,
			  expectlen,
			  1,
			  mode[0] == 'S' || mode[0] == 'P' ? STORE_REC_SIZE : 0,
			  strlen(pexpire)};
	return sync_cmd(s, 8, argv, lens, err, errsize);
}

static void redis_rmw_sync(struct redis_store *s, const char *key,
			   size_t keylen, int64_t now, store_rmw_fn fn,
			   void *fn_arg, store_done_fn done, void *done_arg)
{
	unsigned char expect[REDIS_VALUE_MAX], value[STORE_REC_SIZE];
	size_t expectlen = 0;
	char mode[2], pexpire[24], err[REDIS_ERR_MAX];
	bool confirmed = false;

	for (int attempt = 0; attempt < REDIS_CAS_ATTEMPTS_MAX; attempt++) {
		enum store_verdict v = run_fn(s, fn, fn_arg, now, expect,
					      expectlen, mode, value, pexpire);
		if (confirmed && (v == STORE_KEEP ||
				  (v == STORE_DELETE && expectlen == 0))) {
			done(done_arg, 0, NULL);
			return;
		}
		redisReply *r =
		    sync_script(s, key, keylen, expect, expectlen, mode, value,
				pexpire, err, sizeof(err));
		if (r == NULL) {
			done(done_arg, -1, err);
			return;
		}
		if (r->type == REDIS_REPLY_INTEGER && r->integer == 1) {
			freeReplyObject(r);
			done(done_arg, 0, NULL);
			return;
		}
		if (r->type == REDIS_REPLY_INTEGER) {
			expectlen = 0;
		} else if (r->type == REDIS_REPLY_STRING && r->len > 0 &&
			   r->len <= sizeof(expect)) {
			memcpy(expect, r->str, r->len);
			expectlen = r->len;
		} else {
			freeReplyObject(r);
			s->errors++;
			done(done_arg, -1, "redis: unexpected script reply");
			return;
		}
		freeReplyObject(r);
		confirmed = true;
	}
	s->errors++;
	done(done_arg, -1, "redis: key rewritten concurrently, giving up");
}

static int redis_get(struct store *st, enum store_table t, const void *key,
		     size_t keylen, struct store_rec *out, bool *found,
		     char *err, size_t errsize)
{
	struct redis_store *s = (struct redis_store *)st;
	char rkey[REDIS_RKEY_MAX];
	size_t n = key_build(s, t, key, keylen, rkey);

	*found = false;
	if (n == 0) {
		set_err(err, errsize, "redis get: bad table or key length");
		return -1;
	}
	const char *argv[2] = {"GET", rkey};
	size_t lens[2] = {3, n};
	redisReply *r = sync_cmd(s, 2, argv, lens, err, errsize);
	if (r == NULL)
		return -1;
	if (r->type == REDIS_REPLY_STRING) {
		if (store_rec_decode((const unsigned char *)r->str, r->len,
				     out))
			*found = true;
		else
			s->errors++;
	}
	freeReplyObject(r);
	return 0;
}

static int redis_put(struct store *st, enum store_table t, const void *key,
		     size_t keylen, const struct store_rec *rec, char *err,
		     size_t errsize)
{
	struct redis_store *s = (struct redis_store *)st;
	char rkey[REDIS_RKEY_MAX], pexpire[24];
	unsigned char value[STORE_REC_SIZE];
	size_t n = key_build(s, t, key, keylen, rkey);

	if (n == 0) {
		set_err(err, errsize, "redis put: bad table or key length");
		return -1;
	}
	store_rec_encode(rec, value);
	pexpire_arg(rec->expires, pexpire);
	redisReply *r = sync_script(s, rkey, n, (const unsigned char *)"", 0,
				    "P", value, pexpire, err, errsize);
	if (r == NULL)
		return -1;
	freeReplyObject(r);
	return 0;
}

static int redis_del(struct store *st, enum store_table t, const void *key,
		     size_t keylen, bool *found, char *err, size_t errsize)
{
	struct redis_store *s = (struct redis_store *)st;
	char rkey[REDIS_RKEY_MAX];
	size_t n = key_build(s, t, key, keylen, rkey);

	*found = false;
	if (n == 0) {
		set_err(err, errsize, "redis del: bad table or key length");
		return -1;
	}
	const char *argv[2] = {"DEL", rkey};
	size_t lens[2] = {3, n};
	redisReply *r = sync_cmd(s, 2, argv, lens, err, errsize);
	if (r == NULL)
		return -1;
	*found = r->type == REDIS_REPLY_INTEGER && r->integer > 0;
	freeReplyObject(r);
	return 0;
}

/* SCAN MATCH pattern of table t: the prefix with glob characters escaped. */
static size_t scan_pattern(const struct redis_store *s, enum store_table t,
			   char *out)
{
	size_t n = 0;

	for (size_t i = 0; i < s->prefixlen; i++) {
		char c = s->prefix[i];
		if (c == '*' || c == '?' || c == '[' || c == ']' || c == '\\')
			out[n++] = '\\';
		out[n++] = c;
	}
	out[n++] = table_letter[t];
	out[n++] = ':';
	out[n++] = '*';
	return n;
}

/*
 * Walks table t with SCAN; for each batch calls batch(arg, keys) with the
 * array reply of keys. Returns 0, -1 with err, or the batch's non-zero
 * return (stop).
 */
static int scan_table(struct redis_store *s, enum store_table t,
		      int (*batch)(void *arg, redisReply *keys), void *arg,
		      char *err, size_t errsize)
{
	char pat[2 * REDIS_PREFIX_MAX + 4];
	size_t patlen = scan_pattern(s, t, pat);
	char cursor[32] = "0";
	int rc = 0;

	do {
		const char *argv[6] = {"SCAN", cursor,	"MATCH",
				       pat,    "COUNT", REDIS_SCAN_COUNT};
		size_t lens[6];
		lens[0] = 4;
		lens[1] = strlen(cursor);
		lens[2] = 5;
		lens[3] = patlen;
		lens[4] = 5;
		lens[5] = strlen(REDIS_SCAN_COUNT);
		redisReply *r = sync_cmd(s, 6, argv, lens, err, errsize);
		if (r == NULL)
			return -1;
		if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
		    r->element[0]->type != REDIS_REPLY_STRING ||
		    r->element[0]->len >= sizeof(cursor) ||
		    r->element[1]->type != REDIS_REPLY_ARRAY) {
			freeReplyObject(r);
			set_err(err, errsize, "redis SCAN: unexpected reply");
			return -1;
		}
		memcpy(cursor, r->element[0]->str, r->element[0]->len);
		cursor[r->element[0]->len] = '\0';
		if (r->element[1]->elements > 0)
			rc = batch(arg, r->element[1]);
		freeReplyObject(r);
	} while (rc == 0 && strcmp(cursor, "0") != 0);
	return rc;
}

struct foreach_ctx {
	struct redis_store *s;
	store_visit_fn fn;
	void *arg;
	size_t skip; /* prefix + letter + ':' */
	char *err;
	size_t errsize;
	int failed;
};

static int foreach_batch(void *arg, redisReply *keys)
{
	struct foreach_ctx *c = arg;
	size_t n = keys->elements;
	const char **argv = xreallocarray(NULL, n + 1, sizeof(*argv));
	size_t *lens = xreallocarray(NULL, n + 1, sizeof(*lens));
	int rc = 0;

	argv[0] = "MGET";
	lens[0] = 4;
	for (size_t i = 0; i < n; i++) {
		argv[i + 1] = keys->element[i]->str;
		lens[i + 1] = keys->element[i]->len;
	}
	redisReply *v =
	    sync_cmd(c->s, (int)n + 1, argv, lens, c->err, c->errsize);
	free(argv);
	free(lens);
	if (v == NULL) {
		c->failed = 1;
		return -1;
	}
	if (v->type != REDIS_REPLY_ARRAY || v->elements != n) {
		freeReplyObject(v);
		set_err(c->err, c->errsize, "redis MGET: unexpected reply");
		c->failed = 1;
		return -1;
	}
	for (size_t i = 0; i < n && rc == 0; i++) {
		struct store_rec rec;
		redisReply *k = keys->element[i], *e = v->element[i];
		if (k->type != REDIS_REPLY_STRING || k->len <= c->skip ||
		    e->type != REDIS_REPLY_STRING)
			continue; /* expired meanwhile */
		if (!store_rec_decode((const unsigned char *)e->str, e->len,
				      &rec)) {
			c->s->errors++;
			continue;
		}
		rc = c->fn(c->arg, k->str + c->skip, k->len - c->skip, &rec);
	}
	freeReplyObject(v);
	return rc;
}

static int redis_foreach(struct store *st, enum store_table t,
			 store_visit_fn fn, void *arg, char *err,
			 size_t errsize)
{
	struct redis_store *s = (struct redis_store *)st;
	struct foreach_ctx c = {s, fn, arg, s->prefixlen + 2, err, errsize, 0};

	if ((unsigned)t >= STORE_NTABLES) {
		set_err(err, errsize, "redis foreach: bad table");
		return -1;
	}
	int rc = scan_table(s, t, foreach_batch, &c, err, errsize);
	return rc < 0 || c.failed ? -1 : 0;
}

static int count_batch(void *arg, redisReply *keys)
{
	*(size_t *)arg += keys->elements;
	return 0;
}

static int redis_stats(struct store *st, struct store_stats *out, char *err,
		       size_t errsize)
{
	struct redis_store *s = (struct redis_store *)st;

	memset(out, 0, sizeof(*out));
	for (int t = 0; t < STORE_NTABLES; t++)
		if (scan_table(s, (enum store_table)t, count_batch,
			       &out->records[t], err, errsize) != 0)
			return -1;
	out->errors = s->errors;
	return 0;
}

static int redis_expire(struct store *st, int64_t now, size_t max,
			size_t *removed, char *err, size_t errsize)
{
	(void)st;
	(void)now;
	(void)max;
	(void)err;
	(void)errsize;
	*removed = 0; /* Redis expires keys itself (PEXPIREAT) */
	return 0;
}

static int redis_flush(struct store *st, char *err, size_t errsize)
{
	(void)st;
	(void)err;
	(void)errsize;
	return 0; /* every completed operation was acknowledged by Redis */
}

static void redis_close(struct store *st)
{
	struct redis_store *s = (struct redis_store *)st;

	if (s == NULL)
		return;
	s->closing = true;
	if (s->ac != NULL) {
		redisAsyncContext *ac = s->ac;
		s->ac = NULL;
		redisAsyncFree(ac); /* in-flight ops are freed by op_reply */
	}
	/* Operations still waiting are dropped without `done`: the daemon
	 * closes the store only after the requests in flight finished. */
	for (struct redis_op *op = s->ops, *next; op != NULL; op = next) {
		next = op->next;
		event_free(op->timer);
		free(op);
	}
	s->ops = NULL;
	for (size_t b = 0; b < REDIS_SLOT_BUCKETS; b++)
		while (s->slots[b] != NULL) {
			struct redis_slot *sl = s->slots[b];
			s->slots[b] = sl->next;
			free(sl);
		}
	free(s->guesses);
	if (s->reconnect_ev)
		event_free(s->reconnect_ev);
	if (s->handshake_ev)
		event_free(s->handshake_ev);
	if (s->sc)
		redisFree(s->sc);
	target_free(&s->tgt);
	free(s->prefix);
	/* The prepared key stands for the secret: leave nothing behind. */
	explicit_bzero(&s->hkey, sizeof(s->hkey));
	free(s);
}

/* Up: the handshake completed and no operation has lost the connection
 * since. The daemon then dares the blocking foreach of its whitelist
 * refresh; while down it waits. XXX a Redis that stalls exactly during
 * that refresh still holds the loop for up to redis_timeout per command;
 * an asynchronous foreach would remove that. */
static bool redis_healthy(struct store *st)
{
	const struct redis_store *s = (const struct redis_store *)st;
	return s->state == CONN_READY && !s->closing;
}

static const struct store_ops redis_ops = {
    .healthy = redis_healthy,
    .name = "redis",
    .close = redis_close,
    .rmw = redis_rmw,
    .get = redis_get,
    .put = redis_put,
    .del = redis_del,
    .foreach = redis_foreach,
    .stats = redis_stats,
    .expire = redis_expire,
    .flush = redis_flush,
};

struct store *store_redis_open(struct event_base *base,
			       const struct redis_config *cfg, char *err,
			       size_t errsize)
{
	struct redis_target tgt;
	const char *prefix = cfg->prefix ? cfg->prefix : REDIS_DEFAULT_PREFIX;
	double timeout =
	    cfg->timeout > 0 ? cfg->timeout : REDIS_DEFAULT_TIMEOUT;

	if (strlen(prefix) > REDIS_PREFIX_MAX) {
		set_err(err, errsize, "redis_prefix longer than %d bytes",
			REDIS_PREFIX_MAX);
		return NULL;
	}
	if (cfg->hash_keys && (cfg->secret == NULL || cfg->secret[0] == '\0')) {
		set_err(err, errsize, "key_hash = hmac needs a key_secret");
		return NULL;
	}
	if (parse_url(cfg->url, &tgt, err, errsize) != 0)
		return NULL;

	struct redis_store *s = xcalloc(1, sizeof(*s));
	s->base.ops = &redis_ops;
	s->evbase = base;
	s->tgt = tgt;
	s->prefix = xstrdup(prefix);
	s->prefixlen = strlen(prefix);
	s->hash_keys = cfg->hash_keys;
	if (cfg->hash_keys)
		hmac_sha256_key_init(&s->hkey, cfg->secret,
				     strlen(cfg->secret));
	s->tv.tv_sec = (time_t)timeout;
	s->tv.tv_usec = (suseconds_t)((timeout - (double)s->tv.tv_sec) * 1e6);
	s->on_state = cfg->on_state;
	s->state_arg = cfg->state_arg;
	s->reported_up = true;
	s->state = CONN_DOWN;
	s->backoff_ms = REDIS_BACKOFF_MIN_MS;
	snprintf(s->drop_reason, sizeof(s->drop_reason),
		 "Redis unreachable: not connected yet");
	if (base != NULL) {
		s->op_tv = event_base_init_common_timeout(base, &s->tv);
		if (s->op_tv == NULL)
			s->op_tv = &s->tv;
		s->guesses = xcalloc(REDIS_GUESS_ENTRIES, sizeof(*s->guesses));
		s->reconnect_ev = evtimer_new(base, reconnect_cb, s);
		s->handshake_ev = evtimer_new(base, handshake_timeout_cb, s);
		conn_start(s);
	}
	return &s->base;
}
