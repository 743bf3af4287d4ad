/*
 * greylist - the timing rules of greylisting, as pure functions of an
 * injected `now` (this module never reads the clock).
 *
 * Triplet (STORE_TRIPLETS record, key from key.h):
 *   absent (or expired)             -> new record: first_seen = now,
 *                                      count = 1, expires = now +
 *                                      retry_window; GREY_INITIAL (defer)
 *   not passed, now - first < delay -> count++, last_seen = now;
 *                                      GREY_PENDING (defer), wait_left =
 *                                      delay - (now - first)
 *   not passed, now - first >
 *     retry_window (or first_seen
 *     in the future)                -> start over as if absent; INITIAL
 *   otherwise (retried in time, or
 *     passed before)                -> passed++, count++, expires = now +
 *                                      max_age; GREY_ALLOWED; first_pass
 *                                      tells whether this is the first
 *                                      pass (the caller then counts one
 *                                      pass of the client, below)
 * so a triplet that passed stays allowed until unseen for max_age. In
 * learning mode the record is updated exactly the same way but the
 * verdict is GREY_TRAINING (never defer); `would_defer` says what would
 * have happened. Boundaries follow postgrey: a retry exactly `delay`
 * seconds after first_seen passes; exactly `retry_window` later it does
 * too.
 *
 * Client auto-whitelist (STORE_CLIENTS record, key = client network):
 *   grey_client_check_rmw: whitelisted when passed >= auto_whitelist and
 *   the record is not expired; then last_seen and expires (= now +
 *   max_age) are refreshed, at most once per GREY_AWL_REFRESH seconds to
 *   keep writes down.
 *   grey_client_pass_rmw: called after a triplet's first pass; counts one
 *   pass (passed++), but at most one per awl_interval seconds (postgrey:
 *   "only one attempt per hour counts", so one burst of retries to many
 *   recipients does not whitelist a client at once).
 * auto_whitelist = 0 disables both (the rmw functions then keep the record
 * as it is and report "not whitelisted").
 *
 * The rmw functions follow store.h: pure, they may run more than once for
 * one store_rmw() and write every output field on each run. Their `arg` is
 * the op struct named beside each; the caller fills the inputs, reads the
 * outputs in its store_done_fn.
 *
 * Reply texts: grey_defer_reply() builds the action for Postfix,
 * grey_header() the X-Greylist header. Both sanitise (printable ASCII, no
 * CR/LF) and bound what they write.
 *
 * The intended sequence for one request (the engine's job, not ours):
 *   1. wl_match_client() / wl_match_recipient() (whitelist.h): pass;
 *   2. store_rmw(STORE_CLIENTS, grey_key_net(), grey_client_check_rmw):
 *      whitelisted -> pass;
 *   3. store_rmw(STORE_TRIPLETS, grey_key_triplet(), grey_triplet_rmw):
 *      INITIAL/PENDING -> grey_defer_reply(wait_left);
 *      ALLOWED with first_pass -> store_rmw(STORE_CLIENTS, same key,
 *      grey_client_pass_rmw) and PREPEND grey_header(delayed);
 *      ALLOWED otherwise, TRAINING -> pass.
 */
#ifndef GREYSPF_GREY_GREYLIST_H
#define GREYSPF_GREY_GREYLIST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "store/store.h"

/* Defaults: postgrey's --delay=300, --max-age=35 (days), --retry-window=2
 * (days), --auto-whitelist-clients=5. */
#define GREY_DELAY_DEFAULT 300
#define GREY_RETRY_WINDOW_DEFAULT (2 * 86400)
#define GREY_MAX_AGE_DEFAULT (35 * 86400)
#define GREY_AUTO_WHITELIST_DEFAULT 5
/* postgrey: "Only one attempt per hour counts" towards the auto-whitelist. */
#define GREY_AWL_INTERVAL_DEFAULT 3600
/* Refresh a whitelisted client's record at most hourly: postgrey's cawl
 * update interval; expiry is days away, so hourly is precise enough. */
#define GREY_AWL_REFRESH 3600

/* Reply text bound: our own choice, well under Postfix's line limit
 * (line_length_limit 2048) and SMTP's 512-octet reply line (RFC 5321
 * section 4.5.3.1.5) once Postfix adds "450 " and the recipient. */
#define GREY_REPLY_MAX 400
/* Default defer text: says when to retry, like postgrey's --greylist-text
 * (whose default points to a help page on postgrey's web site instead). */
#define GREY_DEFER_TEXT_DEFAULT "Greylisted, please try again in %s seconds"
/* The action and enhanced status code of a greylist deferral (RFC 3463
 * 4.7.1: delivery not authorized, temporary; Postfix DEFER_IF_PERMIT so a
 * later reject by another restriction still wins). */
#define GREY_DEFER_ACTION "DEFER_IF_PERMIT"
#define GREY_DEFER_CODE "4.7.1"
#define GREY_HEADER_NAME "X-Greylist"
/* Bound of the X-Greylist header line (RFC 5322 section 2.1.1: 78
 * recommended, 998 hard limit; we stay well under the hard one). */
#define GREY_HEADER_MAX 512

struct grey_params {
	int64_t delay;		 /* seconds before a retry passes */
	int64_t retry_window;	 /* a first retry later than this restarts */
	int64_t max_age;	 /* passed entries unseen this long expire */
	uint32_t auto_whitelist; /* passes that whitelist a client; 0 = off */
	int64_t awl_interval;	 /* at most one counted pass per interval */
	bool learning;		 /* record, never defer */
};

/* Fills the defaults above (learning off). */
void grey_params_init(struct grey_params *p);

/* Checks a configuration: 0, or -1 with *why set to a static reason (a
 * negative time, a retry window shorter than the delay, so that nothing
 * could ever pass, or a max_age shorter than the retry window). */
int grey_params_check(const struct grey_params *p, const char **why);

enum grey_verdict {
	GREY_INITIAL, /* first sight (or start over): defer */
	GREY_PENDING, /* retried too early: defer */
	GREY_ALLOWED, /* retried in time, or passed before: pass */
	GREY_TRAINING /* learning mode: pass, but recorded as usual */
};

/* "initial", "pending", "allowed", "training" (for logs and metrics). */
const char *grey_verdict_name(enum grey_verdict v);

/* True for the verdicts that defer the message. */
static inline bool grey_verdict_defers(enum grey_verdict v)
{
	return v == GREY_INITIAL || v == GREY_PENDING;
}

/* The arg of grey_triplet_rmw. */
struct grey_triplet_op {
	/* inputs */
	const struct grey_params *params;
	int64_t now;
	/* outputs, all written by every run */
	enum grey_verdict verdict;
	bool would_defer;  /* the timing verdict defers (learning or not) */
	bool first_pass;   /* this attempt is the triplet's first pass */
	int64_t wait_left; /* seconds until a retry passes (defers), else 0 */
	int64_t delayed;   /* first pass: seconds since first_seen, else 0 */
	uint32_t count;	   /* attempts seen, this one included */
};

/* The rule itself: old is NULL when absent. Always fills *new and op's
 * outputs; returns STORE_WRITE. */
enum store_verdict grey_triplet_rmw(void *op, const struct store_rec *old,
				    struct store_rec *new);

/* The arg of grey_client_check_rmw and grey_client_pass_rmw. */
struct grey_client_op {
	/* inputs */
	const struct grey_params *params;
	int64_t now;
	/* outputs, all written by every run */
	bool whitelisted; /* check: the client is auto-whitelisted now; pass:
			     this pass reached the threshold */
	bool counted;	  /* pass: this pass was counted */
	uint32_t passes;  /* the client's counted passes after this step */
};

enum store_verdict grey_client_check_rmw(void *op, const struct store_rec *old,
					 struct store_rec *new);
enum store_verdict grey_client_pass_rmw(void *op, const struct store_rec *old,
					struct store_rec *new);

/*
 * Builds "DEFER_IF_PERMIT 4.7.1 TEXT" into out, TEXT being tmpl (NULL =
 * GREY_DEFER_TEXT_DEFAULT) with %s = wait_left in seconds, %r = the
 * recipient's domain (after its last "@"; the whole recipient if none),
 * %% = "%"; any other "%x" is copied as it is. Bytes outside printable
 * ASCII become "?"; an empty TEXT becomes "Greylisted". The result is cut
 * at GREY_REPLY_MAX bytes (and at outsize - 1). Returns its length, or -1
 * if outsize is too small to hold even the action and code.
 */
ssize_t grey_defer_reply(const char *tmpl, int64_t wait_left,
			 const char *recipient, char *out, size_t outsize);

/* Returns 0 and checks tmpl for use as a defer template: -1 if it holds a
 * byte outside printable ASCII (config validation). */
int grey_defer_template_check(const char *tmpl);

/*
 * Builds "X-Greylist: delayed N seconds by greyspf-VERSION at HOST; DATE"
 * with DATE the RFC 5322 (section 3.3) date of now in UTC, e.g.
 * "Thu, 26 Nov 2026 06:00:00 +0000". version NULL means GREYSPF_VERSION;
 * version and host are sanitised like the reply.
 * Returns the length, or -1 if it does not fit in outsize.
 */
ssize_t grey_header(int64_t delayed, const char *version, const char *host,
		    int64_t now, char *out, size_t outsize);

#endif
