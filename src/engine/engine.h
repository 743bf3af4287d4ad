/*
 * engine - the decision: one policy request in, one action out.
 *
 * Runs the configured checks in order (`checks`, per-message overrides
 * applied), consulting whitelists and the store, and answers through a
 * callback, possibly later (store commits, DNS). It logs one line per
 * decision in tumgreyspf's wording. It never fails to answer: trouble on our
 * side (store unreachable) gives the configured safe answer.
 *
 * State that spans the requests of one message (Postfix's `instance`, e.g.
 * "header already added") lives in a struct engine_msg that the caller keeps
 * per connection: Postfix sends all requests of one message over one
 * connection, and a new instance means the previous message is finished.
 */
#ifndef GREYSPF_ENGINE_ENGINE_H
#define GREYSPF_ENGINE_ENGINE_H

#include <stdbool.h>
#include <stdint.h>

#include "policy/policy.h"
#include "spf/header.h"
#include "spf/spf.h"

struct event_base;
struct conf;
struct store;
struct dns_resolver;
struct engine;
struct engine_lists;

/* Longest `instance` value remembered (Postfix sends "%x.%lx.%lx.%x"). */
#define ENGINE_INSTANCE_MAX 64
/* Headers one message may collect: Received-SPF, Authentication-Results,
 * X-Greylist. Postfix takes one PREPEND per reply, so they leave one per
 * request of the message (each RCPT, and DATA if the policy is also
 * consulted there). */
#define ENGINE_HEADERS_MAX 3
/* Longest domain kept (RFC 1035: 253 octets in presentation form). */
#define ENGINE_DOMAIN_MAX 254

/* SPF results of one message, computed once and reused for every
 * recipient. result -1: that identity was not checked. */
struct engine_spf {
	uint64_t ident; /* hash of client, HELO and sender the results are for */
	bool done;    /* the fields below are final */
	bool skipped; /* client in skip_clients */
	int mailfrom; /* enum spf_result or -1 */
	int helo;     /* enum spf_result or -1 */
	bool logged;
	bool headers_queued;
	char domain[ENGINE_DOMAIN_MAX];      /* MAIL FROM domain checked */
	char helo_domain[ENGINE_DOMAIN_MAX]; /* HELO name checked */
	/* The decisive evaluation's texts, for reject/defer replies. */
	char explanation[SPF_EXPLANATION_MAX + 1];
	bool explanation_from_domain;
	char problem[160];
	char helo_problem[160];
	char mechanism[SPF_HEADER_VALUE_MAX + 1];
	char helo_mechanism[SPF_HEADER_VALUE_MAX + 1];
	/* Null sender: the MAIL FROM evaluation (postmaster@HELO) serves as
	 * the HELO result too; it is logged once. */
	bool helo_is_mailfrom;
};

struct engine_msg {
	char instance[ENGINE_INSTANCE_MAX];
	bool greylist_header_queued;
	struct engine_spf spf;
	/* Headers waiting for a reply to carry them, in order. */
	char headers[ENGINE_HEADERS_MAX][SPF_HEADER_MAX];
	int nheaders;
};

/* Called exactly once per engine_decide() with the action value (without
 * "action="); the string is valid only during the call. */
typedef void (*engine_done_fn)(void *arg, const char *action);

/* Clock for greylisting; tests inject a fake one. Returns epoch seconds. */
typedef int64_t (*engine_clock_fn)(void *arg);

/*
 * Loads the whitelist files named by conf. Returns NULL with
 * "FILE:LINE: message" in err. Owned by the caller until handed to
 * engine_new()/engine_reload().
 */
struct engine_lists *engine_lists_load(const struct conf *conf, char *err,
				       size_t errsize);
void engine_lists_free(struct engine_lists *l);

/*
 * Creates the engine. Takes a reference on conf and ownership of lists; the
 * store and the resolver stay the caller's and must outlive the engine.
 * dns may be NULL when no `checks` list names spf (SPF then answers
 * temperror).
 */
struct engine *engine_new(struct event_base *base, struct conf *conf,
			  struct engine_lists *lists, struct store *store,
			  struct dns_resolver *dns);
void engine_free(struct engine *e);

/* Swaps in a new configuration and lists (SIGHUP). Requests in flight
 * finish with the old ones. Same ownership as engine_new(). */
void engine_reload(struct engine *e, struct conf *conf,
		   struct engine_lists *lists);

void engine_set_clock(struct engine *e, engine_clock_fn fn, void *arg);

/*
 * Decides one request. req and msg must stay valid until done runs. done may
 * run before engine_decide() returns (no I/O needed) or later from the loop.
 */
void engine_decide(struct engine *e, const struct policy_request *req,
		   struct engine_msg *msg, engine_done_fn done, void *arg);

/* Periodic housekeeping (expiry batches, whitelist refresh); the server
 * calls it from a timer. */
void engine_tick(struct engine *e);

/* Counters for `greyspf db stats` / metrics. */
struct engine_counters {
	uint64_t requests, initial, pending, allowed, training, whitelisted,
		auto_whitelisted, store_errors, bad_requests;
	uint64_t spf_evaluations, spf_result[SPF_NRESULTS],
		spf_rejected, spf_deferred, spf_skipped;
};
const struct engine_counters *engine_counters(const struct engine *e);

#endif
