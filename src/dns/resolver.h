/*
 * resolver - asynchronous DNS lookups for the event loop (libunbound).
 *
 * One resolver per process, shared by every SPF evaluation, so libunbound's
 * TTL-correct positive and negative cache serves them all. Lookups are
 * started with dns_resolve() and complete through a callback from the
 * libevent loop, never from inside dns_resolve(). Each lookup has its own
 * timeout (libunbound has none per query); at the deadline the callback gets
 * DNS_TIMEOUT and the late answer, if any, is dropped.
 *
 * Large answers: libunbound uses EDNS0 and retries truncated (TC) answers
 * over TCP, so TXT records longer than a UDP packet are complete.
 */
#ifndef GREYSPF_DNS_RESOLVER_H
#define GREYSPF_DNS_RESOLVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/addr.h"

struct event_base;
struct dns_resolver;
struct dns_query;

/* Query types we use (RFC 1035 / RFC 3596 numbers). */
enum dns_type {
	DNS_T_A = 1,
	DNS_T_PTR = 12,
	DNS_T_MX = 15,
	DNS_T_TXT = 16,
	DNS_T_AAAA = 28,
};

enum dns_status {
	DNS_OK,	      /* RCODE 0 with at least one record of the type */
	DNS_NODATA,   /* RCODE 0, no record of the type (a void lookup) */
	DNS_NXDOMAIN, /* RCODE 3 (a void lookup) */
	DNS_SERVFAIL, /* any other RCODE, or a resolver/network error */
	DNS_TIMEOUT,  /* no answer within the timeout */
};

/* Default per-query timeout in seconds ([dns] timeout). */
#define DNS_DEFAULT_TIMEOUT 5.0
/* Most servers accepted in [dns] servers. */
#define DNS_MAX_SERVERS 8

struct dns_config {
	/* Comma-separated "ADDR[@PORT]" list to forward to; NULL or empty:
	 * the servers of /etc/resolv.conf. */
	const char *servers;
	/* Resolve iteratively from the root instead of forwarding. */
	int recursion;
	double timeout; /* seconds per query; <= 0 means the default */
};

/* One record of an answer. Which fields are set depends on the type:
 * A/AAAA: addr; MX: pref and name; PTR: name; TXT: text (all character-
 * strings of the RR concatenated, may contain any byte, NUL-terminated for
 * convenience) with text_len. */
struct dns_rr {
	struct addr addr;
	uint16_t pref;
	const char *name; /* presentation form, no trailing dot, lower case
			   * ("." for the root) */
	const char *text;
	size_t text_len;
};

struct dns_answer {
	enum dns_status status;
	enum dns_type type;
	const char *qname;
	size_t count;
	const struct dns_rr *rr; /* count records */
	uint32_t ttl;		 /* smallest TTL of the answer, 0 if none */
	const char *why;	 /* on DNS_SERVFAIL: a short reason, or NULL */
};

/* The answer and everything it points to are valid only during the call. */
typedef void (*dns_callback)(void *arg, const struct dns_answer *answer);

/*
 * Creates the resolver on base. Returns NULL and writes a reason to err
 * (errsize bytes) if the configuration is unusable (bad server address,
 * unreadable resolv.conf). The caller owns the result: dns_resolver_free().
 */
struct dns_resolver *dns_resolver_new(struct event_base *base,
				      const struct dns_config *cfg, char *err,
				      size_t errsize);

/* Cancels all pending lookups (their callbacks are not called) and frees.
 * Not from inside a dns_callback (libunbound is delivering answers then). */
void dns_resolver_free(struct dns_resolver *r);

/*
 * Starts a lookup of name (presentation form, with or without the final dot)
 * for type. cb runs exactly once, later, from the event loop, unless the
 * lookup is cancelled first. Returns a handle owned by the resolver (valid
 * until the callback runs or dns_cancel()), or NULL if name is not a valid
 * domain name (see dns_name_valid()) or type is not one of enum dns_type
 * (then cb is never called).
 */
struct dns_query *dns_resolve(struct dns_resolver *r, const char *name,
			      enum dns_type type, dns_callback cb, void *arg);

/* Cancels a pending lookup: its callback will not run. */
void dns_cancel(struct dns_query *q);

/* The answer cache's counters since start (for metrics): lookups answered
 * from it, lookups that went to libunbound, and entries held now. */
void dns_cache_counts(const struct dns_resolver *r, uint64_t *hits,
		      uint64_t *misses, size_t *entries);

/* Lookups started and not yet completed (for metrics and shutdown). */
size_t dns_pending(const struct dns_resolver *r);

const char *dns_status_name(enum dns_status s);

/*
 * Checks what dns_resolve() accepts: a name in presentation form (\X and
 * \DDD escapes as in zone files) with labels of 1..63 octets, at most 255
 * octets on the wire, an optional final dot; "." is the root. Pure.
 */
bool dns_name_valid(const char *name);

/* Bytes of buf that dns_rdata_parse() needs for rdata of len bytes: a name
 * takes at most 4 characters per wire octet (\DDD escapes) plus NUL. */
#define DNS_RDATA_BUFSIZE(len) (4 * (size_t)(len) + 2)

/*
 * Decodes one record's rdata of the given type (wire form, names not
 * compressed, as libunbound returns it) into rr. Names and text are
 * written into buf (bufsize >= DNS_RDATA_BUFSIZE(len)) and rr points into
 * it. Names come out lower case, without the final dot ("." for the root,
 * e.g. a null MX), with "." and "\" inside labels and non-printable
 * octets escaped so dns_resolve() reads them back as the same name. TXT
 * text is all character-strings joined (an RR with none is empty text).
 * Returns 0, or -1 if the rdata is malformed: wrong length for A/AAAA,
 * truncated, trailing bytes, a compression pointer, a name over 255
 * octets. Pure; used by the resolver and exposed for tests.
 */
int dns_rdata_parse(enum dns_type type, const unsigned char *rdata, size_t len,
		    struct dns_rr *rr, char *buf, size_t bufsize);

#endif
