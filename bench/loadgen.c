/*
 * loadgen - a load generator for the Postfix policy delegation protocol.
 *
 * It plays many smtpd(8) processes at once: each of N connections sends one
 * request, waits for the reply, and only then sends the next, exactly as
 * Postfix's attr_clnt does (it never pipelines). Every reply must be exactly
 * "action=<value>\n\n"; anything else, an EOF, a connect failure or a reply
 * that does not come within the timeout counts as an error, and the
 * connection is dropped and reopened, as Postfix would do.
 *
 * The request mix: a fraction (--repeat-ratio) of requests reuse a triplet
 * (client address, sender, recipient) that was sent earlier in the run, so a
 * greylisting server finds it in its store; the others use a fresh triplet:
 * a client address from the documentation prefixes 192.0.2.0/24,
 * 198.51.100.0/24 and 2001:db8::/32 and a fresh sender and recipient. Every
 * attribute of a triplet is derived from its number, so no table of past
 * triplets is kept.
 *
 * Output: requests/s, latency percentiles (CLOCK_MONOTONIC, from the first
 * byte written to the last byte of the reply), errors by kind, and the count
 * of each action word (the first word of the action= value); as text or,
 * with --json, as one JSON object on stdout.
 *
 * --hold-connections N opens N connections, makes each send --hold-requests
 * requests (default 1), then keeps them open and idle until --duration ends,
 * so the daemon's memory per idle connection can be read from /proc. A line
 * "ready: N connections held" on stdout says when they are all open.
 *
 * Plain libc and epoll, no greyspf code: the harness must not share bugs with
 * what it measures. Only loopback targets are accepted (team rule: load
 * tests stay on 127.0.0.0/8 and ::1).
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "endpoint.h"

/* Bounds on one run (task brief: a load test is bounded in time and count). */
#define LG_MAX_DURATION_S 60.0
#define LG_MAX_REQUESTS 10000000ULL
/* Default run length when neither --requests nor --duration is given. */
#define LG_DEFAULT_DURATION_S 10.0
/* Postfix's default process limit is 100 smtpd processes, each with at most
 * one policy connection (postfix-policy.md 1.6). */
#define LG_DEFAULT_CONNECTIONS 100
/* Far above any smtpd process limit seen in practice; bounds our memory. */
#define LG_MAX_CONNECTIONS 50000
/* A reply that takes this long is a failed try (Postfix waits 100 s, far too
 * long for a benchmark). */
#define LG_DEFAULT_TIMEOUT_S 10.0
/* Postfix waits 1 s before it reconnects after a failed try; a benchmark
 * only needs to avoid spinning against a dead server. */
#define LG_RETRY_DELAY_NS 100000000ULL
/* How often in-flight requests are checked against the timeout. */
#define LG_TIMEOUT_SCAN_NS 100000000ULL
/* Largest request we build: 29 attributes of bounded size fit easily. */
#define LG_REQ_MAX 4096
/* Largest reply accepted: the SMTP text Postfix keeps is cut at 510 bytes
 * (postfix-policy.md 1.2), so 8 KiB is generous; more is an error. */
#define LG_REPLY_MAX 8192
/* Distinct action words tracked; others are counted as "(other)". */
#define LG_MAX_ACTION_WORDS 32
#define LG_ACTION_WORD_MAX 32
/* --sender-domains: RFC 1035 limit on a domain name, and a sanity cap. */
#define LG_DOMAIN_MAX 253
#define LG_MAX_DOMAINS 1000000
/* Latency histogram: values below 2^LG_HIST_SUB_BITS ns are exact; above,
 * each power of two is split in 2^(LG_HIST_SUB_BITS-1) buckets, which gives
 * a relative error below 0.1%. Values up to 2^LG_HIST_TOP_BITS ns (18 min)
 * are kept; the longest is also kept exactly. */
#define LG_HIST_SUB_BITS 11
#define LG_HIST_TOP_BITS 40
#define LG_HIST_HALF (1U << (LG_HIST_SUB_BITS - 1))
#define LG_HIST_BUCKETS                                                        \
	((LG_HIST_TOP_BITS - LG_HIST_SUB_BITS + 2) * (size_t)LG_HIST_HALF)

enum conn_state {
	CS_CLOSED,     /* no socket; waiting for retry_at */
	CS_CONNECTING, /* non-blocking connect in progress */
	CS_SENDING,    /* request partly written */
	CS_READING,    /* request written, waiting for the reply */
	CS_HELD,       /* hold mode: open and idle */
	CS_DONE,       /* nothing more to send on this connection */
};

struct conn {
	int fd;
	enum conn_state state;
	bool want_out;		 /* EPOLLOUT currently requested */
	uint64_t t_start;	 /* when this request (or connect) began */
	uint64_t retry_at;	 /* CS_CLOSED: when to reconnect */
	unsigned long long done; /* requests answered on this connection */
	size_t out_len, out_off;
	size_t in_len;
	char out[LG_REQ_MAX];
	unsigned char in[LG_REPLY_MAX + 1];
};

enum err_kind {
	ERR_CONNECT,
	ERR_WRITE,
	ERR_READ,
	ERR_EOF,
	ERR_BAD_REPLY,
	ERR_TOO_LONG,
	ERR_EMPTY_ACTION,
	ERR_TIMEOUT,
	ERR_KINDS
};

static const char *const err_names[ERR_KINDS] = {
    "connect",	 "write",	   "read",	   "eof",
    "bad_reply", "reply_too_long", "empty_action", "timeout",
};

struct action_count {
	char word[LG_ACTION_WORD_MAX];
	unsigned long long n;
};

struct options {
	const char *target;
	unsigned connections;
	unsigned long long requests; /* 0: bounded by duration only */
	double duration;	     /* seconds; 0: bounded by count only */
	double repeat_ratio;
	bool attrs_full;
	const char *sender_domains;
	bool json;
	double timeout;
	uint64_t seed;
	unsigned hold;		/* 0: normal run */
	unsigned hold_requests; /* requests per connection in hold mode */
};

/* The whole run; one instance, single-threaded. */
struct run {
	struct options opt;
	struct sockaddr_storage addr;
	socklen_t addrlen;
	int epfd;
	struct conn *conns;
	char **domains;
	size_t ndomains;
	uint64_t rng;
	unsigned long long next_id;	 /* next fresh triplet number */
	unsigned long long instance_seq; /* Postfix's per-message instance */
	unsigned long long issued, completed;
	unsigned long long errors[ERR_KINDS];
	uint64_t *hist;
	uint64_t lat_max, lat_sum;
	struct action_count actions[LG_MAX_ACTION_WORDS];
	size_t nactions;
	unsigned long long actions_other;
	uint64_t t_begin, t_deadline, t_last_done;
	bool stopping;
};

static volatile sig_atomic_t got_signal;

static void on_signal(int sig)
{
	(void)sig;
	got_signal = 1;
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

/* xorshift64*: fast, good enough to pick triplets, reproducible by seed. */
static uint64_t rng_next(struct run *r)
{
	uint64_t x = r->rng;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	r->rng = x;
	return x * 0x2545F4914F6CDD1DULL;
}

static double rng_unit(struct run *r)
{
	return (double)(rng_next(r) >> 11) * (1.0 / 9007199254740992.0);
}

static void die(const char *msg)
{
	fprintf(stderr, "loadgen: %s\n", msg);
	exit(2);
}

static void die_errno(const char *what)
{
	fprintf(stderr, "loadgen: %s: %s\n", what, strerror(errno));
	exit(2);
}

/* ---- latency histogram ---- */

static size_t hist_index(uint64_t v)
{
	unsigned shift;

	if (v < (1ULL << LG_HIST_SUB_BITS))
		return (size_t)v;
	if (v >= (1ULL << LG_HIST_TOP_BITS))
		v = (1ULL << LG_HIST_TOP_BITS) - 1;
	/* Keep the top LG_HIST_SUB_BITS bits: v >> shift is in [HALF, 2*HALF).
	 */
	shift = (unsigned)(63 - __builtin_clzll(v)) - (LG_HIST_SUB_BITS - 1);
	return (size_t)(shift + 1) * LG_HIST_HALF +
	       (size_t)((v >> shift) - LG_HIST_HALF);
}

/* The middle of the bucket, so the error is at most half a bucket. */
static uint64_t hist_value(size_t idx)
{
	size_t shift;
	uint64_t low;

	if (idx < (1U << LG_HIST_SUB_BITS))
		return idx;
	shift = idx / LG_HIST_HALF - 1;
	low = (uint64_t)(idx % LG_HIST_HALF + LG_HIST_HALF) << shift;
	return low + ((1ULL << shift) >> 1);
}

/* Nearest-rank percentile, in ns. */
static uint64_t hist_percentile(const struct run *r, double pct)
{
	unsigned long long rank, seen = 0;
	size_t i;

	if (r->completed == 0)
		return 0;
	rank = (unsigned long long)ceil(pct / 100.0 * (double)r->completed);
	if (rank < 1)
		rank = 1;
	for (i = 0; i < LG_HIST_BUCKETS; i++) {
		seen += r->hist[i];
		if (seen >= rank) {
			uint64_t v = hist_value(i);
			return v > r->lat_max ? r->lat_max : v;
		}
	}
	return r->lat_max;
}

/* ---- request generation ---- */

/* Writes the client address of triplet `id` into buf. The first two of
 * every three triplets are IPv4 (most SMTP clients are), the third IPv6 with
 * a distinct /64, so a /64-keyed greylist sees distinct networks too. */
static void triplet_addr(unsigned long long id, char *buf, size_t len)
{
	unsigned long long k = id / 3;

	switch (id % 3) {
	case 0:
		snprintf(buf, len, "192.0.2.%llu", k % 254 + 1);
		break;
	case 1:
		snprintf(buf, len, "198.51.100.%llu", k % 254 + 1);
		break;
	default:
		snprintf(buf, len, "2001:db8:%llx:%llx::%llx",
			 (k >> 16) & 0xffff, k & 0xffff, k % 0xfffe + 1);
		break;
	}
}

static const char *triplet_domain(const struct run *r, unsigned long long id,
				  char *buf, size_t len)
{
	if (r->ndomains > 0)
		return r->domains[id % r->ndomains];
	snprintf(buf, len, "d%llu.example.org", id % 997);
	return buf;
}

/* Appends "name=value\n"; the caller sized the buffer for the worst case. */
static size_t put_attr(char *out, size_t off, const char *name,
		       const char *value)
{
	size_t n = strlen(name), v = strlen(value);

	if (off + n + v + 2 > LG_REQ_MAX)
		die("internal error: request too large");
	memcpy(out + off, name, n);
	off += n;
	out[off++] = '=';
	memcpy(out + off, value, v);
	off += v;
	out[off++] = '\n';
	return off;
}

/* Builds the next request into c->out. Attribute order follows
 * smtpd_check.c check_policy_service() in Postfix 3.7 (postfix-policy.md
 * 1.3); the minimal set is what a greylister and SPF checker read. */
static void build_request(struct run *r, struct conn *c)
{
	unsigned long long id;
	char addr[64], dombuf[32], sender[LG_DOMAIN_MAX + 32];
	char helo[LG_DOMAIN_MAX + 8], rcpt[64], name[64], inst[48], port[8];
	const char *domain;
	size_t off = 0;
	bool full = r->opt.attrs_full;

	if (r->next_id > 0 && rng_unit(r) < r->opt.repeat_ratio)
		id = rng_next(r) % r->next_id;
	else
		id = r->next_id++;

	triplet_addr(id, addr, sizeof(addr));
	domain = triplet_domain(r, id, dombuf, sizeof(dombuf));
	snprintf(sender, sizeof(sender), "user%llu@%s", id, domain);
	snprintf(helo, sizeof(helo), "mx.%s", domain);
	snprintf(rcpt, sizeof(rcpt), "rcpt%llu@example.net", id);
	/* Half the clients have a verified name, half are "unknown". */
	if (id % 2)
		snprintf(name, sizeof(name), "mail%llu.example.com", id);
	else
		snprintf(name, sizeof(name), "unknown");
	/* pid.sec.usec.seqno, as smtpd.c formats it. */
	r->instance_seq++;
	snprintf(inst, sizeof(inst), "%x.%llx.%llx.%x", 4242U,
		 r->instance_seq / 1000000, r->instance_seq % 1000000, 1U);

	off = put_attr(c->out, off, "request", "smtpd_access_policy");
	off = put_attr(c->out, off, "protocol_state", "RCPT");
	off = put_attr(c->out, off, "protocol_name", "ESMTP");
	off = put_attr(c->out, off, "client_address", addr);
	off = put_attr(c->out, off, "client_name", name);
	if (full) {
		snprintf(port, sizeof(port), "%u",
			 (unsigned)(1024 + rng_next(r) % 64000));
		off = put_attr(c->out, off, "client_port", port);
		off = put_attr(c->out, off, "reverse_client_name", name);
		off = put_attr(c->out, off, "server_address", "203.0.113.25");
		off = put_attr(c->out, off, "server_port", "25");
	}
	off = put_attr(c->out, off, "helo_name", helo);
	off = put_attr(c->out, off, "sender", sender);
	off = put_attr(c->out, off, "recipient", rcpt);
	if (full) {
		off = put_attr(c->out, off, "recipient_count", "0");
		off = put_attr(c->out, off, "queue_id", "");
	}
	off = put_attr(c->out, off, "instance", inst);
	if (full) {
		off = put_attr(c->out, off, "size", "12345");
		off = put_attr(c->out, off, "etrn_domain", "");
		off = put_attr(c->out, off, "stress", "");
		off = put_attr(c->out, off, "sasl_method", "");
		off = put_attr(c->out, off, "sasl_username", "");
		off = put_attr(c->out, off, "sasl_sender", "");
		off = put_attr(c->out, off, "ccert_subject", "");
		off = put_attr(c->out, off, "ccert_issuer", "");
		off = put_attr(c->out, off, "ccert_fingerprint", "");
		off = put_attr(c->out, off, "ccert_pubkey_fingerprint", "");
		off = put_attr(c->out, off, "encryption_protocol", "TLSv1.3");
		off = put_attr(c->out, off, "encryption_cipher",
			       "TLS_AES_256_GCM_SHA384");
		off = put_attr(c->out, off, "encryption_keysize", "256");
		off = put_attr(c->out, off, "policy_context", "");
	}
	if (off + 1 > LG_REQ_MAX)
		die("internal error: request too large");
	c->out[off++] = '\n';
	c->out_len = off;
	c->out_off = 0;
}

/* ---- bookkeeping ---- */

static void count_action(struct run *r, const unsigned char *val, size_t len)
{
	char word[LG_ACTION_WORD_MAX];
	size_t n = 0, i;

	while (n < len && val[n] != ' ' && val[n] != '\t')
		n++;
	if (n >= sizeof(word))
		n = sizeof(word) - 1;
	/* Postfix compares the action word case-insensitively (1.4). */
	for (i = 0; i < n; i++)
		word[i] = isprint(val[i]) ? (char)toupper(val[i]) : '?';
	word[n] = '\0';
	for (i = 0; i < r->nactions; i++) {
		if (strcmp(r->actions[i].word, word) == 0) {
			r->actions[i].n++;
			return;
		}
	}
	if (r->nactions < LG_MAX_ACTION_WORDS) {
		memcpy(r->actions[r->nactions].word, word, n + 1);
		r->actions[r->nactions].n = 1;
		r->nactions++;
		return;
	}
	r->actions_other++;
}

static void record_latency(struct run *r, uint64_t ns)
{
	r->hist[hist_index(ns)]++;
	r->lat_sum += ns;
	if (ns > r->lat_max)
		r->lat_max = ns;
}

/* ---- connections ---- */

static void conn_events(struct run *r, struct conn *c, bool want_out)
{
	struct epoll_event ev = {0};

	if (c->want_out == want_out)
		return;
	ev.events = EPOLLIN | (want_out ? EPOLLOUT : 0);
	ev.data.ptr = c;
	if (epoll_ctl(r->epfd, EPOLL_CTL_MOD, c->fd, &ev) < 0)
		die_errno("epoll_ctl");
	c->want_out = want_out;
}

static void conn_close(struct conn *c)
{
	if (c->fd >= 0)
		close(c->fd); /* also removes it from the epoll set */
	c->fd = -1;
	c->in_len = 0;
}

static void conn_fail(struct run *r, struct conn *c, enum err_kind kind,
		      uint64_t now)
{
	r->errors[kind]++;
	/* A failure ends a request too: a server that hangs must not be
	 * credited with the rate of its first fraction of a second. */
	if (now > r->t_last_done)
		r->t_last_done = now;
	conn_close(c);
	c->state = CS_CLOSED;
	c->retry_at = now + LG_RETRY_DELAY_NS;
}

static void conn_open(struct run *r, struct conn *c, uint64_t now)
{
	struct epoll_event ev = {0};
	int fd, one = 1;

	fd = socket(r->addr.ss_family,
		    SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		die_errno("socket");
	if (r->addr.ss_family != AF_UNIX)
		(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one,
				 sizeof(one));
	c->fd = fd;
	c->in_len = 0;
	c->t_start = now;
	ev.events = EPOLLIN | EPOLLOUT;
	ev.data.ptr = c;
	if (epoll_ctl(r->epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
		die_errno("epoll_ctl");
	c->want_out = true;
	if (connect(fd, (struct sockaddr *)&r->addr, r->addrlen) == 0 ||
	    errno == EINPROGRESS || errno == EAGAIN) {
		/* Unix sockets connect at once or fail with EAGAIN when the
		 * backlog is full; EPOLLOUT tells us either way. */
		c->state = CS_CONNECTING;
		return;
	}
	conn_fail(r, c, ERR_CONNECT, now);
}

/* May this connection send another request? */
static bool may_issue(struct run *r, const struct conn *c, uint64_t now)
{
	if (r->stopping)
		return false;
	if (r->opt.hold > 0)
		return c->done < r->opt.hold_requests;
	if (r->opt.requests > 0 && r->issued >= r->opt.requests)
		return false;
	if (r->t_deadline > 0 && now >= r->t_deadline)
		return false;
	return true;
}

static void conn_write(struct run *r, struct conn *c, uint64_t now)
{
	while (c->out_off < c->out_len) {
		ssize_t n =
		    write(c->fd, c->out + c->out_off, c->out_len - c->out_off);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN) {
				conn_events(r, c, true);
				return;
			}
			conn_fail(r, c, ERR_WRITE, now);
			return;
		}
		c->out_off += (size_t)n;
	}
	c->state = CS_READING;
	conn_events(r, c, false);
}

/* Starts the next request on an open connection, or parks it. */
static void conn_next(struct run *r, struct conn *c, uint64_t now)
{
	if (!may_issue(r, c, now)) {
		if (r->opt.hold > 0 && !r->stopping) {
			c->state = CS_HELD;
			conn_events(r, c, false);
			return;
		}
		conn_close(c);
		c->state = CS_DONE;
		return;
	}
	build_request(r, c);
	r->issued++;
	c->state = CS_SENDING;
	c->t_start = now_ns();
	conn_write(r, c, c->t_start);
}

/* Checks the reply in c->in. Returns 1 when it is complete and valid,
 * 0 when more bytes are needed, or -(1 + error kind). */
static int reply_check(struct run *r, struct conn *c)
{
	unsigned char *nl;
	size_t line;

	nl = memchr(c->in, '\n', c->in_len);
	if (nl == NULL)
		return c->in_len > LG_REPLY_MAX ? -(1 + ERR_TOO_LONG) : 0;
	line = (size_t)(nl - c->in);
	if (line + 1 >= c->in_len)
		return 0; /* the empty line has not come yet */
	/* Exactly one line "action=...", then an empty line, then nothing:
	 * Postfix drops a connection with unsolicited bytes (1.5). */
	if (c->in[line + 1] != '\n' || c->in_len != line + 2)
		return -(1 + ERR_BAD_REPLY);
	if (line < 7 || memcmp(c->in, "action=", 7) != 0)
		return -(1 + ERR_BAD_REPLY);
	if (memchr(c->in, '\r', line) != NULL ||
	    memchr(c->in, '\0', line) != NULL)
		return -(1 + ERR_BAD_REPLY);
	if (line == 7)
		return -(1 + ERR_EMPTY_ACTION); /* Postfix reads it as OK */
	count_action(r, c->in + 7, line - 7);
	return 1;
}

static void conn_read(struct run *r, struct conn *c)
{
	ssize_t n;
	uint64_t now;
	int rc;

	if (c->state != CS_READING && c->state != CS_SENDING) {
		/* Bytes or EOF while no request is in flight: unsolicited. */
		unsigned char junk[64];
		n = read(c->fd, junk, sizeof(junk));
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return;
		conn_fail(r, c, n == 0 ? ERR_EOF : ERR_BAD_REPLY, now_ns());
		return;
	}
	n = read(c->fd, c->in + c->in_len, sizeof(c->in) - c->in_len);
	now = now_ns();
	if (n < 0) {
		if (errno == EAGAIN || errno == EINTR)
			return;
		conn_fail(r, c, ERR_READ, now);
		return;
	}
	if (n == 0) {
		conn_fail(r, c, ERR_EOF, now);
		return;
	}
	c->in_len += (size_t)n;
	rc = reply_check(r, c);
	if (rc == 0)
		return;
	if (rc < 0) {
		conn_fail(r, c, (enum err_kind)(-rc - 1), now);
		return;
	}
	record_latency(r, now - c->t_start);
	r->completed++;
	r->t_last_done = now;
	c->done++;
	c->in_len = 0;
	conn_next(r, c, now);
}

static void conn_connected(struct run *r, struct conn *c, uint64_t now)
{
	int err = 0;
	socklen_t len = sizeof(err);

	if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0 ||
	    err != 0) {
		conn_fail(r, c, ERR_CONNECT, now);
		return;
	}
	conn_next(r, c, now);
}

static void handle_event(struct run *r, struct conn *c, uint32_t events)
{
	uint64_t now;

	if (c->fd < 0)
		return;
	switch (c->state) {
	case CS_CONNECTING:
		conn_connected(r, c, now_ns());
		return;
	case CS_SENDING:
		if (events & (EPOLLOUT | EPOLLERR)) {
			now = now_ns();
			conn_write(r, c, now);
			if (c->fd < 0 || c->state != CS_READING)
				return;
		}
		if (events & (EPOLLIN | EPOLLHUP | EPOLLERR))
			conn_read(r, c);
		return;
	case CS_READING:
	case CS_HELD:
		conn_read(r, c);
		return;
	case CS_CLOSED:
	case CS_DONE:
		return;
	}
}

/* Reconnects failed connections whose delay has passed, fails requests that
 * have waited too long, and says whether any work remains. */
static bool sweep(struct run *r, uint64_t now, bool *all_held)
{
	uint64_t timeout = (uint64_t)(r->opt.timeout * 1e9);
	bool active = false;
	unsigned i;

	*all_held = true;
	for (i = 0; i < r->opt.connections; i++) {
		struct conn *c = &r->conns[i];

		if (c->state != CS_HELD)
			*all_held = false;
		switch (c->state) {
		case CS_CLOSED:
			/* A held connection the server closed is reopened:
			 * the point is to keep N open. */
			if (!may_issue(r, c, now) &&
			    !(r->opt.hold > 0 && !r->stopping)) {
				c->state = CS_DONE;
				break;
			}
			active = true;
			if (now >= c->retry_at)
				conn_open(r, c, now);
			break;
		case CS_CONNECTING:
		case CS_SENDING:
		case CS_READING:
			active = true;
			if (now - c->t_start > timeout)
				conn_fail(r, c, ERR_TIMEOUT, now);
			break;
		case CS_HELD:
			active = true;
			break;
		case CS_DONE:
			break;
		}
	}
	return active;
}

/* ---- setup ---- */


/* Parses "inet:HOST:PORT" (HOST may be [v6]) or "unix:/path". */
static void parse_target(struct run *r, const char *target)
{
	char err[256];
	if (endpoint_parse(target, false, &r->addr, &r->addrlen, err,
			   sizeof(err)) != 0)
		die(err);
}

static void load_domains(struct run *r, const char *file)
{
	FILE *fp = fopen(file, "r");
	char line[1024];
	size_t cap = 0;

	if (fp == NULL)
		die_errno(file);
	while (fgets(line, sizeof(line), fp) != NULL) {
		char *s = line, *e;

		while (isspace((unsigned char)*s))
			s++;
		e = s + strlen(s);
		while (e > s && isspace((unsigned char)e[-1]))
			*--e = '\0';
		if (*s == '\0' || *s == '#')
			continue;
		if ((size_t)(e - s) > LG_DOMAIN_MAX)
			die("sender domain longer than 253 characters");
		if (r->ndomains >= LG_MAX_DOMAINS)
			die("too many sender domains");
		if (r->ndomains == cap) {
			cap = cap ? cap * 2 : 64;
			r->domains = realloc(r->domains, cap * sizeof(char *));
			if (r->domains == NULL)
				die("out of memory");
		}
		r->domains[r->ndomains] = strdup(s);
		if (r->domains[r->ndomains] == NULL)
			die("out of memory");
		r->ndomains++;
	}
	fclose(fp);
	if (r->ndomains == 0)
		die("no domains in --sender-domains file");
}

static void raise_fd_limit(unsigned need)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		die_errno("getrlimit");
	if (rl.rlim_cur >= need)
		return;
	if (rl.rlim_max < need)
		die("not enough file descriptors for that many connections "
		    "(raise ulimit -n)");
	rl.rlim_cur = need;
	if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
		die_errno("setrlimit");
}

static void usage(FILE *fp)
{
	fprintf(fp,
		"usage: loadgen [options] inet:HOST:PORT | unix:/path\n"
		"  -c, --connections N     concurrent connections (default "
		"%d)\n"
		"  -n, --requests N        total requests (max %llu)\n"
		"  -d, --duration S        run for S seconds (max %.0f; "
		"default %.0f\n"
		"                          when --requests is not given)\n"
		"  -r, --repeat-ratio R    fraction of requests reusing an "
		"earlier triplet\n"
		"                          (0..1, default 0.5)\n"
		"      --attrs minimal|full  9 attributes, or the 29 of "
		"Postfix 3.7\n"
		"      --sender-domains F  sender domains, one per line\n"
		"      --timeout S         reply timeout (default %.0f)\n"
		"      --seed N            random seed (default 1)\n"
		"      --hold-connections N  open N connections and keep them "
		"idle\n"
		"                          for --duration (memory "
		"measurement)\n"
		"      --hold-requests K   requests per held connection "
		"before idling\n"
		"                          (default 1)\n"
		"      --json              print the result as JSON\n"
		"Exit: 0 all requests answered correctly, 1 errors seen, 2 "
		"usage.\n",
		LG_DEFAULT_CONNECTIONS, LG_MAX_REQUESTS, LG_MAX_DURATION_S,
		LG_DEFAULT_DURATION_S, LG_DEFAULT_TIMEOUT_S);
}

static double parse_double(const char *s, const char *what)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (errno != 0 || end == s || *end != '\0' || !isfinite(v) || v < 0) {
		fprintf(stderr, "loadgen: bad %s: %s\n", what, s);
		exit(2);
	}
	return v;
}

static unsigned long long parse_ull(const char *s, const char *what)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || s[0] == '-') {
		fprintf(stderr, "loadgen: bad %s: %s\n", what, s);
		exit(2);
	}
	return v;
}

static void parse_args(struct options *o, int argc, char **argv)
{
	int i;

	o->connections = LG_DEFAULT_CONNECTIONS;
	o->repeat_ratio = 0.5;
	o->timeout = LG_DEFAULT_TIMEOUT_S;
	o->seed = 1;
	o->hold_requests = 1;
	for (i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;
		bool takes = true;

		if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
			usage(stdout);
			exit(0);
		} else if (strcmp(a, "--json") == 0) {
			o->json = true;
			takes = false;
		} else if (a[0] != '-') {
			if (o->target != NULL)
				die("more than one target given");
			o->target = a;
			takes = false;
		} else if (v == NULL) {
			fprintf(stderr, "loadgen: %s needs a value\n", a);
			exit(2);
		} else if (!strcmp(a, "-c") || !strcmp(a, "--connections")) {
			unsigned long long n = parse_ull(v, a);
			if (n < 1 || n > LG_MAX_CONNECTIONS)
				die("connections out of range");
			o->connections = (unsigned)n;
		} else if (!strcmp(a, "-n") || !strcmp(a, "--requests")) {
			o->requests = parse_ull(v, a);
			if (o->requests < 1 || o->requests > LG_MAX_REQUESTS)
				die("requests must be 1..10000000");
		} else if (!strcmp(a, "-d") || !strcmp(a, "--duration")) {
			o->duration = parse_double(v, a);
			if (o->duration <= 0 || o->duration > LG_MAX_DURATION_S)
				die("duration must be > 0 and at most 60 s");
		} else if (!strcmp(a, "-r") || !strcmp(a, "--repeat-ratio")) {
			o->repeat_ratio = parse_double(v, a);
			if (o->repeat_ratio > 1.0)
				die("repeat ratio must be in 0..1");
		} else if (!strcmp(a, "--attrs")) {
			if (strcmp(v, "full") == 0)
				o->attrs_full = true;
			else if (strcmp(v, "minimal") == 0)
				o->attrs_full = false;
			else
				die("--attrs takes minimal or full");
		} else if (!strcmp(a, "--sender-domains")) {
			o->sender_domains = v;
		} else if (!strcmp(a, "--timeout")) {
			o->timeout = parse_double(v, a);
			if (o->timeout <= 0 || o->timeout > LG_MAX_DURATION_S)
				die("timeout must be > 0 and at most 60 s");
		} else if (!strcmp(a, "--seed")) {
			o->seed = parse_ull(v, a);
		} else if (!strcmp(a, "--hold-connections")) {
			unsigned long long n = parse_ull(v, a);
			if (n < 1 || n > LG_MAX_CONNECTIONS)
				die("hold-connections out of range");
			o->hold = (unsigned)n;
		} else if (!strcmp(a, "--hold-requests")) {
			unsigned long long n = parse_ull(v, a);
			if (n > 1000)
				die("hold-requests must be 0..1000");
			o->hold_requests = (unsigned)n;
		} else {
			fprintf(stderr, "loadgen: unknown option %s\n", a);
			usage(stderr);
			exit(2);
		}
		if (takes)
			i++;
	}
	if (o->target == NULL) {
		usage(stderr);
		exit(2);
	}
	if (o->hold > 0) {
		o->connections = o->hold;
		o->requests = 0;
		if (o->duration == 0)
			o->duration = LG_DEFAULT_DURATION_S;
	}
	if (o->requests == 0 && o->duration == 0)
		o->duration = LG_DEFAULT_DURATION_S;
}

/* ---- output ---- */

static unsigned long long total_errors(const struct run *r)
{
	unsigned long long t = 0;
	int k;

	for (k = 0; k < ERR_KINDS; k++)
		t += r->errors[k];
	return t;
}

static double run_seconds(const struct run *r)
{
	uint64_t end = r->t_last_done > r->t_begin ? r->t_last_done : now_ns();
	return (double)(end - r->t_begin) / 1e9;
}

/* Our own CPU use over the run, in percent of one CPU: near 100 means the
 * generator, not the server, may be what limits the rate. */
static double self_cpu_percent(double secs)
{
	struct rusage ru;
	double used;

	if (secs <= 0 || getrusage(RUSAGE_SELF, &ru) != 0)
		return 0;
	used = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
	       (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
	return used / secs * 100.0;
}

static void print_text(const struct run *r)
{
	double secs = run_seconds(r);
	double ms = 1e-6;
	size_t i;
	int k;

	printf("target        %s\n", r->opt.target);
	printf("connections   %u   attrs %s   repeat-ratio %.2f\n",
	       r->opt.connections, r->opt.attrs_full ? "full" : "minimal",
	       r->opt.repeat_ratio);
	printf("requests      %llu answered in %.3f s (%llu sent)\n",
	       r->completed, secs, r->issued);
	printf("rate          %.0f requests/s   (loadgen CPU %.0f%%)\n",
	       secs > 0 ? (double)r->completed / secs : 0.0,
	       self_cpu_percent(secs));
	printf("latency ms    p50 %.3f   p90 %.3f   p99 %.3f   max %.3f   "
	       "mean %.3f\n",
	       (double)hist_percentile(r, 50) * ms,
	       (double)hist_percentile(r, 90) * ms,
	       (double)hist_percentile(r, 99) * ms, (double)r->lat_max * ms,
	       r->completed ? (double)r->lat_sum / (double)r->completed * ms
			    : 0.0);
	printf("errors        %llu", total_errors(r));
	for (k = 0; k < ERR_KINDS; k++)
		if (r->errors[k])
			printf("   %s %llu", err_names[k], r->errors[k]);
	printf("\nactions      ");
	for (i = 0; i < r->nactions; i++)
		printf(" %s %llu (%.1f%%)", r->actions[i].word, r->actions[i].n,
		       100.0 * (double)r->actions[i].n /
			   (double)(r->completed ? r->completed : 1));
	if (r->actions_other)
		printf(" (other) %llu", r->actions_other);
	printf("\n");
}

static void json_string(const char *s)
{
	putchar('"');
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;
		if (ch == '"' || ch == '\\')
			printf("\\%c", ch);
		else if (ch < 0x20 || ch >= 0x7f)
			printf("\\u%04x", ch);
		else
			putchar(ch);
	}
	putchar('"');
}

static void print_json(const struct run *r)
{
	double secs = run_seconds(r);
	double ms = 1e-6;
	size_t i;
	int k;

	printf("{\"target\":");
	json_string(r->opt.target);
	printf(",\"connections\":%u,\"attrs\":\"%s\",\"repeat_ratio\":%.4f,",
	       r->opt.connections, r->opt.attrs_full ? "full" : "minimal",
	       r->opt.repeat_ratio);
	printf("\"sent\":%llu,\"requests\":%llu,\"seconds\":%.6f,"
	       "\"requests_per_s\":%.1f,\"loadgen_cpu_percent\":%.1f,",
	       r->issued, r->completed, secs,
	       secs > 0 ? (double)r->completed / secs : 0.0,
	       self_cpu_percent(secs));
	printf("\"latency_ms\":{\"p50\":%.4f,\"p90\":%.4f,\"p99\":%.4f,"
	       "\"max\":%.4f,\"mean\":%.4f},",
	       (double)hist_percentile(r, 50) * ms,
	       (double)hist_percentile(r, 90) * ms,
	       (double)hist_percentile(r, 99) * ms, (double)r->lat_max * ms,
	       r->completed ? (double)r->lat_sum / (double)r->completed * ms
			    : 0.0);
	printf("\"errors\":%llu,\"error_kinds\":{", total_errors(r));
	for (k = 0; k < ERR_KINDS; k++)
		printf("%s\"%s\":%llu", k ? "," : "", err_names[k],
		       r->errors[k]);
	printf("},\"actions\":{");
	for (i = 0; i < r->nactions; i++) {
		if (i)
			putchar(',');
		json_string(r->actions[i].word);
		printf(":%llu", r->actions[i].n);
	}
	if (r->actions_other)
		printf("%s\"(other)\":%llu", r->nactions ? "," : "",
		       r->actions_other);
	printf("}");
	if (r->opt.hold)
		printf(",\"held\":%u", r->opt.hold);
	printf("}\n");
}

/* ---- main loop ---- */

int main(int argc, char **argv)
{
	static struct run run;
	struct run *r = &run;
	struct epoll_event events[256];
	struct sigaction sa = {0};
	uint64_t next_sweep, now, t_stop = 0;
	bool ready_said = false;
	unsigned i;

	parse_args(&r->opt, argc, argv);
	parse_target(r, r->opt.target);
	if (r->opt.sender_domains)
		load_domains(r, r->opt.sender_domains);
	raise_fd_limit(r->opt.connections + 64);
	r->rng = r->opt.seed ? r->opt.seed : 0x9E3779B97F4A7C15ULL;
	r->hist = calloc(LG_HIST_BUCKETS, sizeof(*r->hist));
	r->conns = calloc(r->opt.connections, sizeof(*r->conns));
	if (r->hist == NULL || r->conns == NULL)
		die("out of memory");

	sa.sa_handler = on_signal;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	r->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (r->epfd < 0)
		die_errno("epoll_create1");
	r->t_begin = now_ns();
	if (r->opt.duration > 0)
		r->t_deadline = r->t_begin + (uint64_t)(r->opt.duration * 1e9);
	for (i = 0; i < r->opt.connections; i++) {
		r->conns[i].fd = -1;
		conn_open(r, &r->conns[i], r->t_begin);
	}
	next_sweep = r->t_begin + LG_TIMEOUT_SCAN_NS;

	for (;;) {
		int n, j, wait_ms = (int)(LG_TIMEOUT_SCAN_NS / 1000000);

		n = epoll_wait(r->epfd, events, 256, wait_ms);
		if (n < 0 && errno != EINTR)
			die_errno("epoll_wait");
		for (j = 0; j < n; j++)
			handle_event(r, events[j].data.ptr, events[j].events);
		now = now_ns();
		if (got_signal && !r->stopping)
			r->stopping = true;
		if (r->opt.hold > 0 && r->t_deadline > 0 &&
		    now >= r->t_deadline)
			r->stopping = true;
		if (r->stopping && r->opt.hold > 0) {
			for (i = 0; i < r->opt.connections; i++) {
				conn_close(&r->conns[i]);
				r->conns[i].state = CS_DONE;
			}
			break;
		}
		if (n == 0 || now >= next_sweep) {
			bool all_held, active;

			active = sweep(r, now, &all_held);
			next_sweep = now + LG_TIMEOUT_SCAN_NS;
			if (r->opt.hold > 0 && all_held && !ready_said) {
				printf("ready: %u connections held\n",
				       r->opt.hold);
				fflush(stdout);
				ready_said = true;
			}
			if (!active)
				break;
			/* After the deadline or a signal, in-flight requests
			 * get one timeout to finish, then the run ends. */
			if (t_stop == 0 &&
			    (r->stopping ||
			     (r->t_deadline && now >= r->t_deadline)))
				t_stop = now;
			if (t_stop &&
			    now - t_stop > (uint64_t)(r->opt.timeout * 1e9))
				break;
		}
	}

	if (r->opt.json)
		print_json(r);
	else
		print_text(r);
	return total_errors(r) ? 1 : 0;
}
