/*
 * spf - the SPF evaluator: one check_host() (RFC 7208 section 4) as a
 * sans-I/O state machine.
 *
 * The evaluator never performs I/O and never reads a clock. The caller
 * (the daemon's event loop, `greyspf check`, or a test with canned answers)
 * drives it:
 *
 *	struct spf_request rq;
 *	spf_request_init(&rq, SPF_ID_MAILFROM, &ip, mailfrom, helo, myhost);
 *	struct spf_eval *ev = spf_eval_new(&rq);
 *	struct spf_lookup lk[SPF_MAX_STEP];
 *	size_t n;
 *	while ((n = spf_eval_next(ev, lk, SPF_MAX_STEP)) > 0) {
 *		for (size_t i = 0; i < n; i++) {
 *			... resolve lk[i].name / lk[i].type (concurrently) ...
 *			spf_eval_answer(ev, lk[i].id, &answer);
 *		}
 *	}
 *	const struct spf_outcome *o = spf_eval_outcome(ev);
 *	... o->result, o->explanation, o->mechanism ...
 *	spf_eval_free(ev);
 *
 * All lookups returned by one spf_eval_next() call are independent (for
 * example the A/AAAA lookups of every MX host of one "mx" term) and may be
 * resolved concurrently; the evaluation advances once every one of them has
 * been answered. Lookups not yet answered are returned again by the next
 * call, so a caller with room for fewer than SPF_MAX_STEP lookups simply gets
 * the rest on the following call.
 *
 * Answers use the resolver's types (src/dns/resolver.h) so a resolver answer
 * can be passed straight in: DNS_OK with records, DNS_NODATA / DNS_NXDOMAIN
 * (void lookups), DNS_SERVFAIL / DNS_TIMEOUT (temperror where RFC 7208 says
 * so). CNAMEs must already be followed by the caller (libunbound does).
 * The evaluator copies what it needs from each answer during the call.
 *
 * Time limit (RFC 7208 section 4.6.4, "at least 20 seconds"): the driver
 * measures elapsed time and, past SPF_TIME_LIMIT (or its configured limit),
 * calls spf_eval_timeout(), which ends the evaluation with temperror.
 *
 * Name validity: lookup names are 1..253 octets with labels of 1..63,
 * printable ASCII (spaces possible: %_ expands to one), never a backslash,
 * so presentation form reads them literally. Expanded targets that are not
 * valid names are treated as not existing and never asked for.
 *
 * Memory: each evaluation allocates from its own arena, freed at once by
 * spf_eval_free(). Every string the evaluator hands out (lookup names,
 * outcome texts) is owned by the evaluation and valid until spf_eval_free().
 * Allocation failure aborts (xalloc); untrusted input never does.
 */
#ifndef GREYSPF_SPF_SPF_H
#define GREYSPF_SPF_SPF_H

#include <stdbool.h>
#include <stddef.h>

#include "dns/resolver.h"
#include "util/addr.h"

/* RFC 7208 section 4.6.4: at most 10 terms that cause DNS queries
 * (include, a, mx, ptr, exists, redirect) per check_host(); more is
 * permerror. */
#define SPF_MAX_DNS_TERMS 10
/* RFC 7208 section 4.6.4: default limit on void lookups (NODATA/NXDOMAIN
 * answers); exceeding it is permerror. Configurable via max_void. */
#define SPF_MAX_VOID_LOOKUPS 2
/* RFC 7208 section 4.6.4: an "mx" term may have at most 10 MX names; more
 * is permerror. */
#define SPF_MAX_MX_NAMES 10
/* RFC 7208 section 4.6.4: "ptr" and %{p} consider at most 10 PTR names;
 * the rest are ignored. */
#define SPF_MAX_PTR_NAMES 10
/* Most lookups one step can ask for at once (the address lookups of the MX
 * or PTR names of one term). A caller array of this size never needs a
 * second call per step. */
#define SPF_MAX_STEP 10
/* RFC 7208 section 4.6.4: overall elapsed time limit, "at least 20
 * seconds"; enforced by the driver through spf_eval_timeout(). */
#define SPF_TIME_LIMIT 20
/* Longest explanation we return (sanitised, truncated); our choice, fits
 * one SMTP reply line (RFC 5321 section 4.5.3.1.5: 512 octets). */
#define SPF_EXPLANATION_MAX 400
/* Explanation used on fail when the record has no usable exp=. */
#define SPF_DEFAULT_EXPLANATION                                                \
	"SPF fail: %{c} is not allowed to send mail from %{d}"

enum spf_result {
	SPF_NONE,
	SPF_NEUTRAL,
	SPF_PASS,
	SPF_FAIL,
	SPF_SOFTFAIL,
	SPF_TEMPERROR,
	SPF_PERMERROR,
};
/* Number of results, for tables indexed by enum spf_result. */
#define SPF_NRESULTS 7

/* Lower-case RFC 7208 keyword ("pass", "permerror", ...); never NULL. */
const char *spf_result_name(enum spf_result r);
/* Inverse of spf_result_name() (case-insensitive); 0 or -1. */
int spf_result_parse(const char *s, enum spf_result *out);

/* Which identity is checked (RFC 7208 section 2.3, 2.4). */
enum spf_identity {
	SPF_ID_MAILFROM,
	SPF_ID_HELO,
};

/* "mailfrom" or "helo" (the identity= keyword of Received-SPF). */
const char *spf_identity_name(enum spf_identity id);

/* One trace line: depth is the include/redirect nesting (0 = top). The line
 * is valid only during the call and contains printable ASCII only. */
typedef void (*spf_trace_fn)(void *arg, int depth, const char *line);

struct spf_request {
	struct addr ip;		    /* the SMTP client (IPv4-mapped is v4) */
	enum spf_identity identity; /* which identity domain is checked */
	/* MAIL FROM address as given (without <>), "" for the null sender.
	 * Macros %{s} %{l} %{o} use it; an empty local part becomes
	 * "postmaster" and an empty sender "postmaster@<helo>" (section
	 * 4.3). */
	const char *sender;
	const char *helo;     /* HELO/EHLO name, for %{h}; "" if unknown */
	const char *domain;   /* the <domain> to check (section 4.1) */
	const char *receiver; /* our host name, for %{r}; NULL: "unknown" */
	int max_void; /* void lookup limit; <= 0: SPF_MAX_VOID_LOOKUPS */
	/* Default explanation (a macro-string) on fail without usable exp=;
	 * NULL: SPF_DEFAULT_EXPLANATION. */
	const char *default_explanation;
	/* Seconds since the epoch for %{t} (explanations only); the engine
	 * reads no clock: spf_request_init() stores time(NULL). */
	long long now;
	spf_trace_fn trace; /* optional: human-readable evaluation trace */
	void *trace_arg;
};

/*
 * Fills rq for one identity: SPF_ID_MAILFROM checks the domain of sender
 * (the part after the last '@'), or the HELO identity if sender is empty
 * (section 2.4); SPF_ID_HELO checks helo with sender "postmaster@helo".
 * Other fields get their defaults (trace off, max_void default, now =
 * time(NULL), receiver NULL unless given). The
 * strings are not copied: they must live until spf_eval_new() returns.
 */
void spf_request_init(struct spf_request *rq, enum spf_identity identity,
		      const struct addr *ip, const char *sender,
		      const char *helo, const char *receiver);

/* One DNS lookup the evaluator needs. name is in presentation form without
 * the final dot, at most 253 octets, each label 1..63 octets; it is owned
 * by the evaluation (valid until spf_eval_free()). */
struct spf_lookup {
	unsigned id;
	enum dns_type type;
	const char *name;
};

struct spf_eval;

/* Starts one check_host() for rq (which is copied; its strings too). Never
 * NULL. The initial domain checks of section 4.3 happen in the first
 * spf_eval_next() call. */
struct spf_eval *spf_eval_new(const struct spf_request *rq);
void spf_eval_free(struct spf_eval *ev);

/*
 * Writes up to max lookups needed now into out and returns their number;
 * returns 0 when the evaluation has finished (the outcome is final). Each
 * returned lookup must be answered once with spf_eval_answer() before the
 * evaluation can advance; unanswered lookups are returned again.
 */
size_t spf_eval_next(struct spf_eval *ev, struct spf_lookup *out, size_t max);

/*
 * Feeds the answer to lookup id. The answer is copied. Returns 0, or -1 if
 * id is not an outstanding lookup (already answered or unknown; ignored).
 * For a name the resolver refuses, feed DNS_SERVFAIL.
 */
int spf_eval_answer(struct spf_eval *ev, unsigned id,
		    const struct dns_answer *answer);

/* The driver's time limit expired: ends the evaluation with temperror
 * (problem "time limit exceeded"). Outstanding answers are then ignored. */
void spf_eval_timeout(struct spf_eval *ev);

/* True once the evaluation has finished: after spf_eval_next() returned 0
 * or spf_eval_timeout(). (Answers are consumed by the next
 * spf_eval_next() call, so feeding the last answer alone does not finish
 * it.) */
bool spf_eval_done(const struct spf_eval *ev);

/* The outcome; meaningful once spf_eval_done(). All strings are printable
 * ASCII owned by the evaluation. */
struct spf_outcome {
	enum spf_result result;
	/* On fail: the exp= text of the domain, expanded and sanitised, or
	 * the default explanation, at most SPF_EXPLANATION_MAX octets;
	 * NULL for every other result. */
	const char *explanation;
	bool explanation_from_domain; /* true if it came from exp= */
	/* The term that decided, as written in the record with its qualifier
	 * ("ip4:192.0.2.0/24", "-all", "?include:example.com"), or "default"
	 * if none matched; NULL for none/temperror/permerror. */
	const char *mechanism;
	/* On permerror/temperror: what went wrong, e.g. "more than 10
	 * DNS-querying terms at 'a' (RFC 7208 4.6.4)" or "DNS timeout
	 * looking up TXT example.com"; otherwise NULL. */
	const char *problem;
	/* The domain the result is for (the initial <domain>, no final dot). */
	const char *domain;
	unsigned lookups;      /* DNS-querying terms charged (11 = over) */
	unsigned void_lookups; /* void lookups seen */
	unsigned queries;      /* DNS queries asked of the caller in total */
};

const struct spf_outcome *spf_eval_outcome(const struct spf_eval *ev);

#endif
