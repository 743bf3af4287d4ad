/*
 * resolver - asynchronous DNS lookups for the event loop, over libunbound.
 *
 * SUMMARY
 *	One libunbound context in threaded async mode (ub_ctx_async(ctx, 1)):
 *	a background thread resolves; answers come back through a pipe whose
 *	read end (ub_fd()) is watched by a persistent libevent read event that
 *	calls ub_process(), which runs our completion callback per answer.
 *	Each lookup also has a libevent timer: at the deadline the lookup is
 *	cancelled with ub_cancel() and the caller gets DNS_TIMEOUT. libunbound
 *	has no per-query timeout of its own; it keeps retrying in the
 *	background and drops the late answer (ub_cancel() in thread mode
 *	only marks the query).
 *
 *	The user callback never runs inside dns_resolve(): libunbound 1.17's
 *	ub_resolve_async() only writes the query to the background thread's
 *	pipe, even for cached names; should a version ever answer at once,
 *	the answer is parked and delivered through event_active() on the
 *	query's timer.
 *
 * UNBOUND OPTIONS (ub_ctx_set_option() before the first lookup)
 *	module-config: iterator
 *		No DNSSEC validation: no trust anchor is configured and the
 *		SPF result does not depend on it.
 *	num-queries-per-thread: 4096
 *		The default, 1024, is less than a busy daemon has in flight;
 *		when the table is full, queries older than jostle-timeout
 *		are dropped, which looks like random SERVFAILs. Lookups we
 *		cancelled at their timeout hold a slot until unbound gives up.
 *	outgoing-range: 512
 *		libunbound's default is 16 UDP sockets: 1000 lookups against
 *		a server answering in 100 ms then took 6 s. 512 stays under
 *		the usual 1024 open files limit; more queries wait for a
 *		free socket.
 *	outgoing-num-tcp: 32
 *		Default 2; TCP is what large TXT answers fall back to.
 *	msg-cache-size: 4m, rrset-cache-size: 8m
 *		The defaults (1 MB each) hold only a few thousand answers.
 *	edns-buffer-size: the default, 1232 (DNS flag day 2020).
 *		A larger answer (or one larger than the server sends over
 *		UDP) comes back with TC set and libunbound retries over TCP.
 *		The tests make the fixture truncate UDP answers over 512
 *		bytes (--max-udp 512) to exercise that path.
 *
 *	Forwarding ([dns] servers, or /etc/resolv.conf when empty):
 *	do-not-query-localhost: no
 *		libunbound refuses to query 127.0.0.0/8 and ::1 otherwise,
 *		and local forwarders (a local unbound, systemd-resolved, the
 *		test fixture) live there.
 *	infra-host-ttl: 3 (default 900)
 *		unbound backs off a server that lets queries time out: the
 *		retransmit timeout doubles per timeout, and once it passes
 *		12 s, after three timeouts of one query type it stops
 *		sending that type to the server (SERVFAIL at once) until the
 *		host entry expires. With a forwarder, one dead domain behind
 *		it then takes every other lookup down: 8 lookups of a name
 *		that never answers, 2 s apart, made all A lookups through the
 *		forwarder fail for the next 15 minutes (tests/dns,
 *		test_timeouts_do_not_poison_the_forwarder). An entry that
 *		lives 3 s never reaches that state; the forwarder's RTT is
 *		learnt again in one query. (infra-keep-probing did not help.)
 *	unblock-lan-zones: yes, and local-zone: "NAME transparent" for
 *	test. invalid. home.arpa. 2.0.192.in-addr.arpa.
 *	100.51.198.in-addr.arpa. 113.0.203.in-addr.arpa.
 *	8.b.d.0.1.0.0.2.ip6.arpa.
 *		unbound answers these special-use names (RFC 6761, RFC 8375,
 *		RFC 1918 and documentation reverse zones) itself with
 *		NXDOMAIN. With a forwarder, the forwarder knows better: a
 *		site's DNS serves the PTR records of its private clients,
 *		and tests (and the SPF test suite) use .test names and
 *		192.0.2.x / 2001:db8:: PTR records. localhost., onion. and
 *		the loopback reverse zones keep their built-in answers.
 *	ub_ctx_set_fwd() per server ("ADDR@PORT").
 *		Forwarding to an authoritative-only server (AA set, RA
 *		clear, like the test fixture) works: unbound sends RD=1 and
 *		takes the answer; no stub-zone needed. Negative answers need
 *		a SOA (the fixture sends one) to be cached (RFC 2308).
 *
 *	Recursion (recursion = yes): no forwarder and no resolv.conf;
 *	libunbound iterates from its built-in root hints and keeps
 *	do-not-query-localhost and the local zones at their defaults (a
 *	delegation to 127.0.0.1 must not reach local services).
 *
 * ANSWER CACHE
 *	libunbound caches too, but every lookup still crosses to its thread
 *	and back through a pipe (about 17 system calls and two thread
 *	wake-ups per lookup, even for a cached name): with warm caches that
 *	was over half of a daemon's CPU (bench/SPF-RESULTS.md). So decoded
 *	answers (records, NODATA, NXDOMAIN; never SERVFAIL or timeouts) are
 *	kept here too, for their TTL (at most DNS_CACHE_TTL_MAX), keyed by the
 *	lower-cased name and type, bounded in entries and bytes (the oldest
 *	go first). A hit is delivered from the loop like any answer, never
 *	inside dns_resolve(); entries are reference-counted while a callback
 *	reads them.
 *
 * ANSWERS
 *	rdata comes from the network (libunbound hands over the wire form
 *	with names uncompressed) and is decoded with bounds checks by
 *	dns_rdata_parse(); a malformed record is skipped, and an answer
 *	whose records are all malformed is DNS_SERVFAIL ("malformed
 *	answer").
 *
 * ERRORS
 *	dns_resolver_new() reports configuration errors in err. Nothing is
 *	logged here (library code).
 */
#include "dns/resolver.h"

#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <arpa/inet.h>
#include <event2/event.h>
#include <unbound.h>

#include "util/str.h"
#include "util/xalloc.h"

/* Longest domain name on the wire, including length octets (RFC 1035
 * section 2.3.4) and longest label. */
#define DNS_WIRE_NAME_MAX 255
#define DNS_LABEL_MAX 63
/* Longest accepted "ADDR@PORT" item in [dns] servers: an IPv6 text address
 * (46 with NUL) plus "@65535". */
#define DNS_SERVER_ITEM_MAX (ADDR_STRLEN + 8)
/* Longest accepted [dns] timeout; a policy reply is due long before. */
#define DNS_MAX_TIMEOUT 3600.0
/* Answer cache bounds (see ANSWER CACHE): our choice, far above a busy
 * MX's working set of SPF names, and a TTL cap so a record's change is
 * seen within the hour even if its publisher set a week. */
#define DNS_CACHE_MAX_ENTRIES 50000
#define DNS_CACHE_MAX_BYTES ((size_t)32 << 20)
#define DNS_CACHE_TTL_MAX 3600
#define DNS_CACHE_BUCKETS 65536 /* power of two */
/* The DNS class IN (RFC 1035 section 3.2.4). */
#define DNS_CLASS_IN 1
/* RCODEs (RFC 1035 section 4.1.1). */
#define DNS_RCODE_NOERROR 0
#define DNS_RCODE_FORMERR 1
#define DNS_RCODE_SERVFAIL 2
#define DNS_RCODE_NXDOMAIN 3
#define DNS_RCODE_NOTIMP 4
#define DNS_RCODE_REFUSED 5

/* One cached answer; rr and the strings they point to live in mem. */
struct dns_centry {
	struct dns_centry *hnext;	  /* hash chain */
	struct dns_centry *older, *newer; /* insertion order */
	uint64_t hash;
	enum dns_type type;
	enum dns_status status;
	char *name; /* lower case, no final dot */
	time_t expires;
	size_t count;
	struct dns_rr *rr;
	void *mem;
	size_t bytes;
	int refs;	/* callbacks reading it now */
	bool unlinked;	/* evicted while read: freed at refs == 0 */
};

struct dns_query {
	struct dns_resolver *r;
	struct dns_query *prev, *next; /* the resolver's pending list */
	struct event *timer;
	dns_callback cb;
	void *arg;
	char *qname;
	enum dns_type type;
	int ub_id;
	bool in_submit; /* inside ub_resolve_async() */
	bool early;	/* answered inside ub_resolve_async(): parked */
	int early_err;
	struct ub_result *early_res;
	struct dns_centry *hit; /* answered from the cache (referenced) */
	struct dns_query *rprev, *rnext; /* hits: the resolver's ready list */
};

struct dns_resolver {
	struct event_base *base;
	struct ub_ctx *ctx;
	/* libunbound's own diagnostics go here (/dev/null), never to
	 * stderr: in spawn mode stderr is the Postfix socket. */
	FILE *ub_log;
	struct event *ub_event;
	struct timeval timeout;
	struct dns_query *head;
	size_t pending;
	/* the answer cache, and its hits waiting for the loop (one event
	 * for all of them, not a timer each) */
	struct dns_query *ready_head, *ready_tail;
	struct event *ready_ev;
	struct dns_centry **buckets;
	struct dns_centry *oldest, *newest;
	size_t centries, cbytes;
	uint64_t hits, misses;
};

const char *dns_status_name(enum dns_status s)
{
	switch (s) {
	case DNS_OK:
		return "ok";
	case DNS_NODATA:
		return "nodata";
	case DNS_NXDOMAIN:
		return "nxdomain";
	case DNS_SERVFAIL:
		return "servfail";
	case DNS_TIMEOUT:
		return "timeout";
	}
	return "unknown";
}

/* ---- rdata decoding (untrusted bytes) ---- */

/* Appends the presentation form of one label byte: lower case, with "."
 * and "\" escaped and anything not printable as \DDD, so the text can be
 * given back to dns_resolve() and means the same name. */
static size_t put_label_byte(unsigned char c, char *out)
{
	if (c == '.' || c == '\\') {
		out[0] = '\\';
		out[1] = (char)c;
		return 2;
	}
	if (c > 0x20 && c < 0x7f) {
		out[0] = (char)((c >= 'A' && c <= 'Z') ? c + ('a' - 'A') : c);
		return 1;
	}
	out[0] = '\\';
	out[1] = (char)('0' + c / 100);
	out[2] = (char)('0' + (c / 10) % 10);
	out[3] = (char)('0' + c % 10);
	return 4;
}

/*
 * Decodes an uncompressed wire-form name at p (len bytes available) into
 * out (at least 4 * len + 2 bytes). Sets *used to the bytes consumed.
 * Returns 0, or -1 if the name is truncated, too long, or compressed.
 */
static int name_from_wire(const unsigned char *p, size_t len, size_t *used,
			  char *out, size_t outsize)
{
	size_t off = 0, o = 0;

	if (outsize < 4 * len + 2)
		return -1;
	for (;;) {
		size_t l;

		if (off >= len)
			return -1;
		l = p[off];
		if (l == 0) {
			off++;
			break;
		}
		if (l > DNS_LABEL_MAX) /* 0xC0 pointers and reserved types */
			return -1;
		if (l > len - off - 1)
			return -1;
		if (off + 1 + l + 1 > DNS_WIRE_NAME_MAX)
			return -1;
		if (o > 0)
			out[o++] = '.';
		for (size_t i = 0; i < l; i++)
			o += put_label_byte(p[off + 1 + i], out + o);
		off += 1 + l;
	}
	if (o == 0)
		out[o++] = '.'; /* the root, e.g. a null MX (RFC 7505) */
	out[o] = '\0';
	*used = off;
	return 0;
}

int dns_rdata_parse(enum dns_type type, const unsigned char *rdata, size_t len,
		    struct dns_rr *rr, char *buf, size_t bufsize)
{
	size_t used = 0;

	memset(rr, 0, sizeof(*rr));
	if (rdata == NULL && len > 0)
		return -1;
	if (bufsize < DNS_RDATA_BUFSIZE(len))
		return -1;
	switch (type) {
	case DNS_T_A:
		if (len != 4)
			return -1;
		rr->addr.family = AF_INET;
		memcpy(rr->addr.b, rdata, 4);
		return 0;
	case DNS_T_AAAA:
		if (len != 16)
			return -1;
		rr->addr.family = AF_INET6;
		memcpy(rr->addr.b, rdata, 16);
		return 0;
	case DNS_T_MX:
		if (len < 3)
			return -1;
		rr->pref = (uint16_t)(rdata[0] << 8 | rdata[1]);
		if (name_from_wire(rdata + 2, len - 2, &used, buf, bufsize) <
			0 ||
		    used != len - 2)
			return -1;
		rr->name = buf;
		return 0;
	case DNS_T_PTR:
		if (name_from_wire(rdata, len, &used, buf, bufsize) < 0 ||
		    used != len)
			return -1;
		rr->name = buf;
		return 0;
	case DNS_T_TXT: {
		/* One or more <character-string>s (RFC 1035 section 3.3.14),
		 * joined without separator (RFC 7208 section 3.3). An RR with
		 * no string at all is accepted as empty text. */
		size_t off = 0, n = 0;

		while (off < len) {
			size_t l = rdata[off];

			if (l > len - off - 1)
				return -1;
			memcpy(buf + n, rdata + off + 1, l);
			n += l;
			off += 1 + l;
		}
		buf[n] = '\0';
		rr->text = buf;
		rr->text_len = n;
		return 0;
	}
	}
	return -1;
}

/* ---- names given by the caller ---- */

/*
 * True if name is a domain name in presentation form that libunbound will
 * parse to the same name: labels of 1..63 octets (after \X and \DDD
 * escapes), at most 255 octets on the wire, an optional final dot. The
 * root "." is accepted.
 */
bool dns_name_valid(const char *name)
{
	size_t wire = 1, label = 0;
	const unsigned char *s = (const unsigned char *)name;

	if (name == NULL || *name == '\0')
		return false;
	if (strcmp(name, ".") == 0)
		return true;
	while (*s) {
		if (*s == '.') {
			if (label == 0)
				return false; /* empty label */
			label = 0;
			s++;
			continue;
		}
		if (*s == '\\') {
			if (s[1] >= '0' && s[1] <= '9') {
				unsigned v;

				if (!(s[2] >= '0' && s[2] <= '9' &&
				      s[3] >= '0' && s[3] <= '9'))
					return false;
				v = (unsigned)(s[1] - '0') * 100 +
				    (unsigned)(s[2] - '0') * 10 +
				    (unsigned)(s[3] - '0');
				if (v > 255)
					return false;
				s += 4;
			} else if (s[1] == '\0') {
				return false;
			} else {
				s += 2;
			}
		} else {
			s++;
		}
		if (label == 0)
			wire++; /* the length octet */
		if (++label > DNS_LABEL_MAX || ++wire > DNS_WIRE_NAME_MAX)
			return false;
	}
	return true;
}

/* ---- the answer cache ---- */

static time_t mono_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	return ts.tv_sec;
}

/* The cache key's name: lower case, without the final dot. */
static size_t key_name(const char *name, char *out, size_t outsize)
{
	size_t n = strlen(name);
	if (n > 1 && name[n - 1] == '.')
		n--;
	if (n >= outsize)
		n = outsize - 1;
	for (size_t i = 0; i < n; i++) {
		char c = name[i];
		out[i] = (c >= 'A' && c <= 'Z') ? (char)(c + ('a' - 'A')) : c;
	}
	out[n] = '\0';
	return n;
}

static uint64_t key_hash(const char *name, enum dns_type type)
{
	uint64_t h = 0xcbf29ce484222325ull ^ (uint64_t)type;
	for (const unsigned char *p = (const unsigned char *)name; *p; p++)
		h = (h ^ *p) * 0x100000001b3ull;
	return h;
}

static void centry_free(struct dns_centry *e)
{
	free(e->name);
	free(e->mem);
	free(e);
}

/* Takes e out of the table and the age list; frees it unless a callback
 * is reading it. */
static void cache_unlink(struct dns_resolver *r, struct dns_centry *e)
{
	struct dns_centry **pp = &r->buckets[e->hash & (DNS_CACHE_BUCKETS - 1)];
	while (*pp != e)
		pp = &(*pp)->hnext;
	*pp = e->hnext;
	if (e->older)
		e->older->newer = e->newer;
	else
		r->oldest = e->newer;
	if (e->newer)
		e->newer->older = e->older;
	else
		r->newest = e->older;
	r->centries--;
	r->cbytes -= e->bytes;
	e->unlinked = true;
	if (e->refs == 0)
		centry_free(e);
}

static struct dns_centry *cache_find(struct dns_resolver *r, const char *name,
				     enum dns_type type)
{
	char key[4 * DNS_WIRE_NAME_MAX + 2];
	key_name(name, key, sizeof(key));
	uint64_t h = key_hash(key, type);
	struct dns_centry *e = r->buckets[h & (DNS_CACHE_BUCKETS - 1)];
	for (; e; e = e->hnext) {
		if (e->hash != h || e->type != type || strcmp(e->name, key) != 0)
			continue;
		if (e->expires <= mono_now()) {
			cache_unlink(r, e);
			return NULL;
		}
		return e;
	}
	return NULL;
}

/* Keeps a copy of a final answer (records, NODATA, NXDOMAIN) with a TTL. */
static void cache_put(struct dns_resolver *r, const char *name,
		      const struct dns_answer *a)
{
	if (a->ttl == 0 || (a->status != DNS_OK && a->status != DNS_NODATA &&
			    a->status != DNS_NXDOMAIN))
		return;
	struct dns_centry *old = cache_find(r, name, a->type);
	if (old != NULL)
		cache_unlink(r, old);

	size_t bytes = a->count * sizeof(struct dns_rr);
	for (size_t i = 0; i < a->count; i++) {
		if (a->rr[i].name)
			bytes += strlen(a->rr[i].name) + 1;
		if (a->rr[i].text)
			bytes += a->rr[i].text_len + 1;
	}
	struct dns_centry *e = xcalloc(1, sizeof(*e));
	char key[4 * DNS_WIRE_NAME_MAX + 2];
	key_name(name, key, sizeof(key));
	e->name = xstrdup(key);
	e->type = a->type;
	e->hash = key_hash(key, a->type);
	e->status = a->status;
	e->expires = mono_now() +
		     (time_t)(a->ttl < DNS_CACHE_TTL_MAX ? a->ttl
							 : DNS_CACHE_TTL_MAX);
	e->count = a->count;
	e->bytes = sizeof(*e) + strlen(key) + 1 + bytes;
	if (a->count > 0) {
		e->mem = xmalloc(bytes);
		e->rr = e->mem;
		char *p = (char *)(e->rr + a->count);
		for (size_t i = 0; i < a->count; i++) {
			e->rr[i] = a->rr[i];
			if (a->rr[i].name) {
				size_t n = strlen(a->rr[i].name) + 1;
				memcpy(p, a->rr[i].name, n);
				e->rr[i].name = p;
				p += n;
			}
			if (a->rr[i].text) {
				memcpy(p, a->rr[i].text, a->rr[i].text_len);
				p[a->rr[i].text_len] = '\0';
				e->rr[i].text = p;
				p += a->rr[i].text_len + 1;
			}
		}
	}
	struct dns_centry **b = &r->buckets[e->hash & (DNS_CACHE_BUCKETS - 1)];
	e->hnext = *b;
	*b = e;
	e->older = r->newest;
	if (r->newest)
		r->newest->newer = e;
	else
		r->oldest = e;
	r->newest = e;
	r->centries++;
	r->cbytes += e->bytes;
	while (r->oldest != e && (r->centries > DNS_CACHE_MAX_ENTRIES ||
				  r->cbytes > DNS_CACHE_MAX_BYTES))
		cache_unlink(r, r->oldest);
}

static void cache_release(struct dns_centry *e)
{
	if (--e->refs == 0 && e->unlinked)
		centry_free(e);
}

static void cache_clear(struct dns_resolver *r)
{
	while (r->oldest)
		cache_unlink(r, r->oldest);
	free(r->buckets);
	r->buckets = NULL;
}

/* ---- completion ---- */

static void unlink_query(struct dns_query *q)
{
	struct dns_resolver *r = q->r;

	if (q->prev)
		q->prev->next = q->next;
	else
		r->head = q->next;
	if (q->next)
		q->next->prev = q->prev;
	r->pending--;
}

static void free_query(struct dns_query *q)
{
	if (q->hit)
		cache_release(q->hit);
	if (q->timer)
		event_free(q->timer);
	if (q->early_res)
		ub_resolve_free(q->early_res);
	free(q->qname);
	free(q);
}

static const char *rcode_reason(int rcode)
{
	switch (rcode) {
	case DNS_RCODE_FORMERR:
		return "FORMERR";
	case DNS_RCODE_SERVFAIL:
		return "SERVFAIL";
	case DNS_RCODE_NOTIMP:
		return "NOTIMP";
	case DNS_RCODE_REFUSED:
		return "REFUSED";
	default:
		return "unexpected RCODE";
	}
}

/* Builds the answer for q from libunbound's result and runs the callback.
 * Consumes nothing: the caller frees res and q. */
static void deliver(struct dns_query *q, int err, struct ub_result *res)
{
	struct dns_answer a;
	struct dns_rr *rrs = NULL;
	char *buf = NULL;

	memset(&a, 0, sizeof(a));
	a.type = q->type;
	a.qname = q->qname;
	if (err != 0 || res == NULL) {
		a.status = DNS_SERVFAIL;
		a.why = err != 0 ? ub_strerror(err) : "no result";
	} else if (res->rcode == DNS_RCODE_NXDOMAIN) {
		a.status = DNS_NXDOMAIN;
		a.ttl = res->ttl > 0 ? (uint32_t)res->ttl : 0;
	} else if (res->rcode != DNS_RCODE_NOERROR) {
		a.status = DNS_SERVFAIL;
		a.why = rcode_reason(res->rcode);
	} else if (!res->havedata || res->data == NULL ||
		   res->data[0] == NULL) {
		a.status = DNS_NODATA;
		a.ttl = res->ttl > 0 ? (uint32_t)res->ttl : 0;
	} else {
		size_t n = 0, total = 0, off = 0;

		while (res->data[n] != NULL)
			n++;
		for (size_t i = 0; i < n; i++)
			total += DNS_RDATA_BUFSIZE(res->len[i] > 0 ? res->len[i]
								   : 0);
		rrs = xcalloc(n, sizeof(*rrs));
		buf = xmalloc(total);
		for (size_t i = 0; i < n; i++) {
			size_t len = res->len[i] > 0 ? (size_t)res->len[i] : 0;
			size_t need = DNS_RDATA_BUFSIZE(len);

			if (dns_rdata_parse(
				q->type, (const unsigned char *)res->data[i],
				len, &rrs[a.count], buf + off, need) == 0) {
				a.count++;
				off += need;
			}
		}
		if (a.count == 0) {
			a.status = DNS_SERVFAIL;
			a.why = "malformed answer";
		} else {
			a.status = DNS_OK;
			a.rr = rrs;
			a.ttl = res->ttl > 0 ? (uint32_t)res->ttl : 0;
		}
	}
	cache_put(q->r, q->qname, &a);
	q->cb(q->arg, &a);
	free(rrs);
	free(buf);
}

/* libunbound's callback, from ub_process() (or, in theory, from inside
 * ub_resolve_async(): then the answer is parked for the event loop). */
static void on_ub_answer(void *arg, int err, struct ub_result *res)
{
	struct dns_query *q = arg;

	if (q->in_submit) {
		q->early = true;
		q->early_err = err;
		q->early_res = res;
		event_active(q->timer, EV_TIMEOUT, 0);
		return;
	}
	unlink_query(q);
	deliver(q, err, res);
	if (res)
		ub_resolve_free(res);
	free_query(q);
}

/* The query's timer: its deadline, or a parked early answer. */
static void on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct dns_query *q = arg;

	(void)fd;
	(void)what;
	unlink_query(q);
	if (q->early) {
		deliver(q, q->early_err, q->early_res);
	} else {
		struct dns_answer a;

		/* The late answer, if any, is dropped by libunbound. */
		ub_cancel(q->r->ctx, q->ub_id);
		memset(&a, 0, sizeof(a));
		a.status = DNS_TIMEOUT;
		a.type = q->type;
		a.qname = q->qname;
		q->cb(q->arg, &a);
	}
	free_query(q);
}

static void ready_remove(struct dns_resolver *r, struct dns_query *q)
{
	if (q->rprev)
		q->rprev->rnext = q->rnext;
	else
		r->ready_head = q->rnext;
	if (q->rnext)
		q->rnext->rprev = q->rprev;
	else
		r->ready_tail = q->rprev;
	q->rprev = q->rnext = NULL;
}

/* Delivers the cache hits queued before this run; hits their callbacks
 * queue wait for the next loop iteration, so I/O is never starved. */
static void on_ready(evutil_socket_t fd, short what, void *arg)
{
	struct dns_resolver *r = arg;
	struct dns_query *last = r->ready_tail;

	(void)fd;
	(void)what;
	while (r->ready_head != NULL) {
		struct dns_query *q = r->ready_head;
		bool was_last = q == last;
		const struct dns_centry *e = q->hit;
		struct dns_answer a;
		time_t left = e->expires - mono_now();

		ready_remove(r, q);
		unlink_query(q);
		memset(&a, 0, sizeof(a));
		a.status = e->status;
		a.type = q->type;
		a.qname = q->qname;
		a.count = e->count;
		a.rr = e->rr;
		a.ttl = left > 0 ? (uint32_t)left : 0;
		q->cb(q->arg, &a);
		free_query(q);
		if (was_last)
			break;
	}
	if (r->ready_head != NULL)
		event_active(r->ready_ev, EV_TIMEOUT, 0);
}

static void on_ub_readable(evutil_socket_t fd, short what, void *arg)
{
	struct dns_resolver *r = arg;

	(void)fd;
	(void)what;
	/* Runs on_ub_answer() for every answer that has arrived. An error
	 * here means the pipe to the resolver thread broke; pending lookups
	 * then end with DNS_TIMEOUT. */
	(void)ub_process(r->ctx);
}

/* ---- setup ---- */

static int set_opt(struct dns_resolver *r, const char *opt, const char *val,
		   char *err, size_t errsize)
{
	int rc = ub_ctx_set_option(r->ctx, opt, val);

	if (rc != 0) {
		snprintf(err, errsize, "unbound option %s %s: %s", opt, val,
			 ub_strerror(rc));
		return -1;
	}
	return 0;
}

/* Adds each "ADDR[@PORT]" of servers as a forwarder. */
static int set_servers(struct dns_resolver *r, const char *servers, char *err,
		       size_t errsize)
{
	const char *cursor = servers;
	char item[DNS_SERVER_ITEM_MAX];
	int n = 0, rc;

	while ((rc = str_list_next(&cursor, item, sizeof(item))) == 1) {
		char *at = strchr(item, '@');
		struct addr a;
		long long port = 53;
		char fwd[DNS_SERVER_ITEM_MAX + 8];
		char text[ADDR_STRLEN];

		if (at) {
			*at = '\0';
			if (str_parse_int(at + 1, 1, 65535, &port) < 0) {
				snprintf(err, errsize,
					 "dns server %.60s: bad port %.10s",
					 item, at + 1);
				return -1;
			}
		}
		if (addr_parse(item, &a) < 0) {
			snprintf(err, errsize,
				 "dns server %.60s: not an IP address", item);
			return -1;
		}
		if (++n > DNS_MAX_SERVERS) {
			snprintf(err, errsize, "more than %d dns servers",
				 DNS_MAX_SERVERS);
			return -1;
		}
		addr_format(&a, text, sizeof(text));
		snprintf(fwd, sizeof(fwd), "%s@%lld", text, port);
		rc = ub_ctx_set_fwd(r->ctx, fwd);
		if (rc != 0) {
			snprintf(err, errsize, "dns server %s: %s", fwd,
				 ub_strerror(rc));
			return -1;
		}
	}
	if (rc < 0) {
		snprintf(err, errsize, "dns servers: item too long");
		return -1;
	}
	return 0;
}

static int configure(struct dns_resolver *r, const struct dns_config *cfg,
		     char *err, size_t errsize)
{
	static const char *const common[][2] = {
	    {"module-config:", "iterator"}, {"num-queries-per-thread:", "4096"},
	    {"outgoing-range:", "512"},	    {"outgoing-num-tcp:", "32"},
	    {"msg-cache-size:", "4m"},	    {"rrset-cache-size:", "8m"},
	};
	static const char *const forwarding[][2] = {
	    {"do-not-query-localhost:", "no"},
	    {"infra-host-ttl:", "3"},
	    {"unblock-lan-zones:", "yes"},
	    {"local-zone:", "test. transparent"},
	    {"local-zone:", "invalid. transparent"},
	    {"local-zone:", "home.arpa. transparent"},
	    {"local-zone:", "2.0.192.in-addr.arpa. transparent"},
	    {"local-zone:", "100.51.198.in-addr.arpa. transparent"},
	    {"local-zone:", "113.0.203.in-addr.arpa. transparent"},
	    {"local-zone:", "8.b.d.0.1.0.0.2.ip6.arpa. transparent"},
	};
	bool have_servers = cfg->servers && cfg->servers[0] != '\0';
	int rc;

	for (size_t i = 0; i < sizeof(common) / sizeof(common[0]); i++)
		if (set_opt(r, common[i][0], common[i][1], err, errsize) < 0)
			return -1;
	if (cfg->recursion)
		return 0;
	for (size_t i = 0; i < sizeof(forwarding) / sizeof(forwarding[0]); i++)
		if (set_opt(r, forwarding[i][0], forwarding[i][1], err,
			    errsize) < 0)
			return -1;
	if (have_servers)
		return set_servers(r, cfg->servers, err, errsize);
	rc = ub_ctx_resolvconf(r->ctx, NULL);
	if (rc != 0) {
		snprintf(err, errsize, "/etc/resolv.conf: %s%s%s",
			 ub_strerror(rc), rc == UB_READFILE ? ": " : "",
			 rc == UB_READFILE ? strerror(errno) : "");
		return -1;
	}
	return 0;
}

struct dns_resolver *dns_resolver_new(struct event_base *base,
				      const struct dns_config *cfg, char *err,
				      size_t errsize)
{
	struct dns_resolver *r;
	double t = cfg->timeout;
	int rc;

	if (!(t > 0))
		t = DNS_DEFAULT_TIMEOUT;
	if (t > DNS_MAX_TIMEOUT || !isfinite(t)) {
		snprintf(err, errsize, "dns timeout above %.0f s",
			 DNS_MAX_TIMEOUT);
		return NULL;
	}
	r = xcalloc(1, sizeof(*r));
	r->base = base;
	r->buckets = xcalloc(DNS_CACHE_BUCKETS, sizeof(*r->buckets));
	r->ready_ev = event_new(base, -1, 0, on_ready, r);
	if (r->ready_ev == NULL) {
		snprintf(err, errsize, "cannot create the resolver's events");
		free(r->buckets);
		free(r);
		return NULL;
	}
	r->timeout.tv_sec = (time_t)t;
	r->timeout.tv_usec = (suseconds_t)((t - (double)(time_t)t) * 1e6);
	r->ctx = ub_ctx_create();
	if (r->ctx == NULL) {
		snprintf(err, errsize, "cannot create unbound context");
		event_free(r->ready_ev);
		free(r->buckets);
		free(r);
		return NULL;
	}
	r->ub_log = fopen("/dev/null", "we");
	if (r->ub_log == NULL || ub_ctx_debugout(r->ctx, r->ub_log) != 0 ||
	    ub_ctx_debuglevel(r->ctx, 0) != 0) {
		snprintf(err, errsize, "cannot silence unbound's log");
		goto fail;
	}
	rc = ub_ctx_async(r->ctx, 1);
	if (rc != 0) {
		snprintf(err, errsize, "unbound async mode: %s",
			 ub_strerror(rc));
		goto fail;
	}
	if (configure(r, cfg, err, errsize) < 0)
		goto fail;
	r->ub_event = event_new(base, ub_fd(r->ctx), EV_READ | EV_PERSIST,
				on_ub_readable, r);
	if (r->ub_event == NULL || event_add(r->ub_event, NULL) < 0) {
		snprintf(err, errsize, "cannot watch the unbound pipe");
		goto fail;
	}
	return r;
fail:
	if (r->ub_event)
		event_free(r->ub_event);
	ub_ctx_delete(r->ctx);
	if (r->ub_log)
		fclose(r->ub_log);
	cache_clear(r);
	event_free(r->ready_ev);
	free(r);
	return NULL;
}

void dns_resolver_free(struct dns_resolver *r)
{
	struct dns_query *q, *next;

	if (r == NULL)
		return;
	event_free(r->ub_event);
	/* Stops the resolver thread; callbacks of pending queries are not
	 * called, so our records can be freed after. */
	ub_ctx_delete(r->ctx);
	if (r->ub_log)
		fclose(r->ub_log);
	for (q = r->head; q; q = next) {
		next = q->next;
		free_query(q);
	}
	cache_clear(r);
	event_free(r->ready_ev);
	free(r);
}

struct dns_query *dns_resolve(struct dns_resolver *r, const char *name,
			      enum dns_type type, dns_callback cb, void *arg)
{
	struct dns_query *q;
	int rc;

	if (!dns_name_valid(name) || cb == NULL)
		return NULL;
	switch (type) {
	case DNS_T_A:
	case DNS_T_AAAA:
	case DNS_T_MX:
	case DNS_T_TXT:
	case DNS_T_PTR:
		break;
	default:
		return NULL;
	}
	q = xcalloc(1, sizeof(*q));
	q->r = r;
	q->cb = cb;
	q->arg = arg;
	q->type = type;
	q->qname = xstrdup(name);
	struct dns_centry *hit = cache_find(r, name, type);
	if (hit != NULL) {
		/* Answered from the loop, like any other answer. */
		r->hits++;
		hit->refs++;
		q->hit = hit;
		q->next = r->head;
		if (r->head)
			r->head->prev = q;
		r->head = q;
		r->pending++;
		q->rprev = r->ready_tail;
		if (r->ready_tail)
			r->ready_tail->rnext = q;
		else
			r->ready_head = q;
		r->ready_tail = q;
		event_active(r->ready_ev, EV_TIMEOUT, 0);
		return q;
	}
	q->timer = evtimer_new(r->base, on_timer, q);
	if (q->timer == NULL) {
		free_query(q);
		return NULL;
	}
	q->next = r->head;
	if (r->head)
		r->head->prev = q;
	r->head = q;
	r->pending++;
	r->misses++;
	evtimer_add(q->timer, &r->timeout);

	q->in_submit = true;
	rc = ub_resolve_async(r->ctx, name, (int)type, DNS_CLASS_IN, q,
			      on_ub_answer, &q->ub_id);
	q->in_submit = false;
	if (rc != 0 && !q->early) {
		/* Not started (out of memory, broken pipe): report it from
		 * the loop like any other failure. */
		q->early = true;
		q->early_err = rc;
		event_active(q->timer, EV_TIMEOUT, 0);
	}
	return q;
}

void dns_cancel(struct dns_query *q)
{
	if (q == NULL)
		return;
	if (q->hit != NULL)
		ready_remove(q->r, q);
	else if (!q->early)
		ub_cancel(q->r->ctx, q->ub_id);
	unlink_query(q);
	free_query(q);
}

void dns_cache_counts(const struct dns_resolver *r, uint64_t *hits,
		      uint64_t *misses, size_t *entries)
{
	*hits = r->hits;
	*misses = r->misses;
	*entries = r->centries;
}

size_t dns_pending(const struct dns_resolver *r)
{
	return r->pending;
}
