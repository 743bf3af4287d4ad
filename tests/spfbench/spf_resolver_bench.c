/*
 * spf_resolver_bench - SPF evaluations per second through the whole client
 * path: the evaluator (src/spf/spf.h) driven by spfrun
 * (src/engine/spfrun.h) with the real libunbound resolver
 * (src/dns/resolver.h) on a libevent loop, against a DNS server such as
 * tests/fixtures/dnsserver.py. Not a CTest; bench/spf-bench.sh runs it.
 *
 *	spf_resolver_bench --dns 127.0.0.1@PORT [-n N] [-k K] [--warm W]
 *			   [--distinct COUNT] [--json]
 *
 * Mix mode (default): evaluation i runs case i % 4 of the table below
 * (zone: bench/spf-zone.json). W evaluations of the mix (K in flight)
 * first fill the resolver's cache; then N more are timed, K in flight at
 * once: each finished evaluation starts the next.
 *
 * Distinct mode (--distinct COUNT): COUNT evaluations all started at once,
 * each for its own domain dNNNNNN.bulk.test (record "v=spf1 a -all", the
 * name's A record is the client), so every one needs two uncached lookups
 * in sequence (TXT, then A). Timed from the first start to the last done;
 * meant for a server that delays every answer (--delay 100).
 *
 * Every outcome is compared with the expected result; exit status 1 if any
 * differs (a benchmark of wrong answers measures nothing).
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include <event2/event.h>

#include "dns/resolver.h"
#include "engine/spfrun.h"
#include "spf/spf.h"
#include "util/addr.h"

/* Our choices for the benchmark's bounds. */
#define BENCH_MAX_INFLIGHT 100000
#define BENCH_MAX_COUNT 100000000L
#define BENCH_NAME_MAX 64
/* Per-query timeout and SPF time limit: generous, a timeout is a failure
 * of the run, not part of the measure. */
#define BENCH_DNS_TIMEOUT 10.0
#define BENCH_TIME_LIMIT 20.0

struct bench_case {
	const char *what;
	const char *ip;
	const char *sender;
	enum spf_result expect;
};

/* The realistic mix; the records are in bench/spf-zone.json. */
static const struct bench_case cases[] = {
    /* v=spf1 ip4:192.0.2.0/24 -all: 1 query */
    {"ip4 hit", "192.0.2.10", "alice@ip4.bench.test", SPF_PASS},
    /* include chain of depth 3, the last has the ip4: 4 queries */
    {"include x3", "198.51.100.20", "bob@inc.bench.test", SPF_PASS},
    /* mx with 4 hosts (each A and AAAA), client is the 4th: 1 MX + 4 A */
    {"mx 4 hosts", "203.0.113.4", "carol@mx.bench.test", SPF_PASS},
    /* v=spf1 -all: 1 query, default explanation expanded */
    {"-all fail", "192.0.2.99", "dave@fail.bench.test", SPF_FAIL},
};
#define NCASES (sizeof(cases) / sizeof(cases[0]))

struct bench {
	struct event_base *base;
	struct dns_resolver *dns;
	long total;   /* evaluations in this phase */
	long started; /* started so far */
	long done;
	long wrong;
	long distinct; /* > 0: distinct mode */
	double time_limit;
	struct addr ip[NCASES];
	struct addr bulk_ip;
	char wrong_what[160];
};

static double now_s(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static double cpu_s(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
	       (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static void start_one(struct bench *b);

static void on_done(void *arg, const struct spf_outcome *o)
{
	struct bench *b = arg;
	/* The case index travels in the outcome's domain: match it back. */
	enum spf_result expect = SPF_PASS;
	if (!b->distinct)
		for (size_t i = 0; i < NCASES; i++) {
			const char *d = strchr(cases[i].sender, '@') + 1;
			if (o->domain && !strcmp(o->domain, d))
				expect = cases[i].expect;
		}
	if (o->result != expect) {
		if (b->wrong++ == 0)
			snprintf(b->wrong_what, sizeof(b->wrong_what),
				 "%s: %s (%s)", o->domain ? o->domain : "?",
				 spf_result_name(o->result),
				 o->problem ? o->problem : "-");
	}
	b->done++;
	if (b->started < b->total)
		start_one(b);
	if (b->done == b->total)
		event_base_loopbreak(b->base);
}

static void start_one(struct bench *b)
{
	struct spf_request rq;
	char sender[BENCH_NAME_MAX];
	long i = b->started++;

	if (b->distinct) {
		snprintf(sender, sizeof(sender), "u@d%06ld.bulk.test", i);
		spf_request_init(&rq, SPF_ID_MAILFROM, &b->bulk_ip, sender,
				 "mx.client.test", "mx.bench.test");
	} else {
		const struct bench_case *c = &cases[i % (long)NCASES];
		spf_request_init(&rq, SPF_ID_MAILFROM, &b->ip[i % (long)NCASES],
				 c->sender, "mx.client.test", "mx.bench.test");
	}
	spfrun_start(b->base, b->dns, &rq, b->time_limit, on_done, b);
}

/* Runs total evaluations with k in flight; returns the wall time. */
static double run_phase(struct bench *b, long total, long k)
{
	b->total = total;
	b->started = 0;
	b->done = 0;
	double t0 = now_s();
	for (long i = 0; i < k && i < total; i++)
		start_one(b);
	event_base_dispatch(b->base);
	return now_s() - t0;
}

static void usage(void)
{
	fprintf(stderr,
		"usage: spf_resolver_bench --dns ADDR@PORT [-n N] [-k K] "
		"[--warm W] [--distinct COUNT] [--json]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"dns", required_argument, NULL, 'd'},
	    {"count", required_argument, NULL, 'n'},
	    {"inflight", required_argument, NULL, 'k'},
	    {"warm", required_argument, NULL, 'w'},
	    {"distinct", required_argument, NULL, 'D'},
	    {"json", no_argument, NULL, 'j'},
	    {NULL, 0, NULL, 0},
	};
	const char *servers = NULL;
	long n = 200000, k = 100, warm = 2000, distinct = 0;
	int json = 0, ch;
	char err[256];

	while ((ch = getopt_long(argc, argv, "n:k:", opts, NULL)) != -1) {
		switch (ch) {
		case 'd':
			servers = optarg;
			break;
		case 'n':
			n = atol(optarg);
			break;
		case 'k':
			k = atol(optarg);
			break;
		case 'w':
			warm = atol(optarg);
			break;
		case 'D':
			distinct = atol(optarg);
			break;
		case 'j':
			json = 1;
			break;
		default:
			usage();
		}
	}
	if (servers == NULL || n < 1 || n > BENCH_MAX_COUNT || k < 1 ||
	    k > BENCH_MAX_INFLIGHT || warm < 0 || warm > BENCH_MAX_COUNT ||
	    distinct < 0 || distinct > BENCH_MAX_INFLIGHT)
		usage();

	struct bench b = {.time_limit = BENCH_TIME_LIMIT, .distinct = distinct};
	for (size_t i = 0; i < NCASES; i++)
		if (addr_parse(cases[i].ip, &b.ip[i]) < 0)
			abort();
	if (addr_parse("192.0.2.77", &b.bulk_ip) < 0)
		abort();
	b.base = event_base_new();
	struct dns_config dc = {.servers = servers,
				.timeout = BENCH_DNS_TIMEOUT};
	b.dns = b.base ? dns_resolver_new(b.base, &dc, err, sizeof(err)) : NULL;
	if (b.dns == NULL) {
		fprintf(stderr, "spf_resolver_bench: resolver: %s\n",
			b.base ? err : "no event base");
		return 2;
	}

	int rc = 0;
	if (distinct) {
		double c0 = cpu_s();
		double s = run_phase(&b, distinct, distinct);
		double cpu = cpu_s() - c0;
		if (json)
			printf("{\"mode\":\"distinct\",\"evaluations\":%ld,"
			       "\"inflight\":%ld,\"seconds\":%.4f,"
			       "\"cpu_seconds\":%.4f,\"wrong\":%ld}\n",
			       distinct, distinct, s, cpu, b.wrong);
		else
			printf("%ld distinct evaluations all in flight: %.3f s "
			       "(cpu %.3f s), %ld wrong\n",
			       distinct, s, cpu, b.wrong);
	} else {
		double ws = warm ? run_phase(&b, warm, k) : 0;
		long wrong_warm = b.wrong;
		double c0 = cpu_s();
		double s = run_phase(&b, n, k);
		double cpu = cpu_s() - c0;
		double rate = (double)n / s;
		if (json)
			printf("{\"mode\":\"mix\",\"evaluations\":%ld,"
			       "\"inflight\":%ld,\"warm\":%ld,"
			       "\"warm_seconds\":%.4f,\"seconds\":%.4f,"
			       "\"cpu_seconds\":%.4f,\"rate\":%.0f,"
			       "\"rate_per_cpu_second\":%.0f,\"wrong\":%ld}\n",
			       n, k, warm, ws, s, cpu, rate, (double)n / cpu,
			       b.wrong - wrong_warm);
		else
			printf(
			    "%ld evaluations (%ld in flight, %ld warm-up) in "
			    "%.3f s: %.0f evaluations/s; cpu %.3f s "
			    "(%.0f per cpu-second); %ld wrong\n",
			    n, k, warm, s, rate, cpu, (double)n / cpu,
			    b.wrong - wrong_warm);
	}
	if (b.wrong) {
		fprintf(stderr,
			"spf_resolver_bench: %ld unexpected results, "
			"first: %s\n",
			b.wrong, b.wrong_what);
		rc = 1;
	}
	dns_resolver_free(b.dns);
	event_base_free(b.base);
	return rc;
}
