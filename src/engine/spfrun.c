/*
 * spfrun - SPF evaluation on the event loop; see spfrun.h.
 */
#include "engine/spfrun.h"
#include "util/xalloc.h"

#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

struct spfrun_q {
	struct spfrun *run;
	struct dns_query *q; /* NULL once answered */
	unsigned id;
	struct timespec sent;
};

struct spfrun {
	struct spf_eval *ev;
	struct dns_resolver *dns;
	struct event *timer; /* time limit, and the deferred first step */
	spfrun_done_fn done;
	void *arg;
	spf_trace_fn trace;
	void *trace_arg;
	struct spfrun_q q[SPF_MAX_STEP];
	size_t nq, pending;
	bool started;
	double time_limit;
};

static void spfrun_step(struct spfrun *r);

static void spfrun_finish(struct spfrun *r)
{
	for (size_t i = 0; i < r->nq; i++)
		if (r->q[i].q != NULL) {
			dns_cancel(r->q[i].q);
			r->q[i].q = NULL;
		}
	event_free(r->timer);
	r->done(r->arg, spf_eval_outcome(r->ev));
	spf_eval_free(r->ev);
	free(r);
}

static double elapsed_ms(const struct timespec *t0)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)(t.tv_sec - t0->tv_sec) * 1e3 +
	       (double)(t.tv_nsec - t0->tv_nsec) / 1e6;
}

static void spfrun_on_answer(void *arg, const struct dns_answer *a)
{
	struct spfrun_q *q = arg;
	struct spfrun *r = q->run;
	q->q = NULL;
	if (r->trace) {
		char line[128];
		snprintf(line, sizeof(line), "(answered in %.1f ms)",
			 elapsed_ms(&q->sent));
		r->trace(r->trace_arg, 1, line);
	}
	spf_eval_answer(r->ev, q->id, a);
	if (--r->pending == 0)
		spfrun_step(r);
}

static void spfrun_step(struct spfrun *r)
{
	for (;;) {
		struct spf_lookup lk[SPF_MAX_STEP];
		size_t n = spf_eval_next(r->ev, lk, SPF_MAX_STEP);
		if (n == 0) {
			spfrun_finish(r);
			return;
		}
		r->nq = n;
		r->pending = n;
		size_t failed = 0;
		for (size_t i = 0; i < n; i++) {
			struct spfrun_q *q = &r->q[i];
			q->run = r;
			q->id = lk[i].id;
			clock_gettime(CLOCK_MONOTONIC, &q->sent);
			q->q = dns_resolve(r->dns, lk[i].name, lk[i].type,
					   spfrun_on_answer, q);
			if (q->q == NULL) {
				/* A name the resolver refuses: a server
				 * failure as far as SPF is concerned. */
				struct dns_answer a = {
					.status = DNS_SERVFAIL,
					.type = lk[i].type,
					.qname = lk[i].name,
					.why = "invalid name"};
				spf_eval_answer(r->ev, q->id, &a);
				failed++;
			}
		}
		r->pending -= failed;
		if (r->pending > 0)
			return;
	}
}

static void spfrun_on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct spfrun *r = arg;
	(void)fd;
	(void)what;
	if (!r->started) {
		/* The deferred first step; then arm the time limit. */
		r->started = true;
		struct timeval tv = {(time_t)r->time_limit,
				     (suseconds_t)((r->time_limit -
						    (double)(time_t)
							    r->time_limit) *
						   1e6)};
		event_add(r->timer, &tv);
		spfrun_step(r);
		return;
	}
	spf_eval_timeout(r->ev);
	spfrun_finish(r);
}

struct spfrun *spfrun_start(struct event_base *base, struct dns_resolver *dns,
			    const struct spf_request *rq, double time_limit,
			    spfrun_done_fn done, void *arg)
{
	struct spfrun *r = xcalloc(1, sizeof(*r));
	r->ev = spf_eval_new(rq);
	r->dns = dns;
	r->done = done;
	r->arg = arg;
	r->trace = rq->trace;
	r->trace_arg = rq->trace_arg;
	r->time_limit = time_limit > 0 ? time_limit : SPF_TIME_LIMIT;
	r->timer = evtimer_new(base, spfrun_on_timer, r);
	if (r->timer == NULL)
		abort();
	/* First step from the loop: the evaluation may finish without any
	 * lookup (a malformed domain), and done must not run inside start. */
	struct timeval zero = {0, 0};
	event_add(r->timer, &zero);
	return r;
}

void spfrun_cancel(struct spfrun *r)
{
	if (r == NULL)
		return;
	for (size_t i = 0; i < r->nq; i++)
		if (r->q[i].q != NULL)
			dns_cancel(r->q[i].q);
	event_free(r->timer);
	spf_eval_free(r->ev);
	free(r);
}
