/*
 * spfrun - drives one SPF evaluation (src/spf/spf.h) with the asynchronous
 * resolver (src/dns/resolver.h) on the event loop.
 *
 * The lookups of one evaluation step are issued together and the step
 * advances when all are answered; many evaluations run side by side on one
 * loop. The overall time limit (RFC 7208 section 4.6.4) is a loop timer:
 * past it the evaluation ends with temperror. Used by the daemon and by
 * `greyspf check`.
 */
#ifndef GREYSPF_ENGINE_SPFRUN_H
#define GREYSPF_ENGINE_SPFRUN_H

#include "dns/resolver.h"
#include "spf/spf.h"

struct event_base;
struct spfrun;

/* Called once with the outcome (valid only during the call), unless the run
 * is cancelled first. The run frees itself after the call. */
typedef void (*spfrun_done_fn)(void *arg, const struct spf_outcome *o);

/*
 * Starts evaluating rq (copied by the evaluator). time_limit in seconds
 * (<= 0: SPF_TIME_LIMIT). done never runs before spfrun_start() returns.
 * With rq->trace set, each answer is also traced with its latency.
 * Returns a handle valid until done runs or spfrun_cancel().
 */
struct spfrun *spfrun_start(struct event_base *base, struct dns_resolver *dns,
			    const struct spf_request *rq, double time_limit,
			    spfrun_done_fn done, void *arg);

/* Stops a run: pending lookups are cancelled and done is not called. */
void spfrun_cancel(struct spfrun *r);

#endif
