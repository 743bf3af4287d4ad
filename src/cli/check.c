/*
 * check - `greyspf check`: one SPF evaluation from the command line.
 *
 * Checks the MAIL FROM identity (postmaster@HELO for an empty sender) and
 * prints the result keyword alone on the first line, the explanation (or
 * the problem, for errors) on the second, then the Received-SPF header it
 * would add. --json prints one object instead; --trace adds the evaluation
 * as an indented tree (terms, lookups with answers and latency, the running
 * lookup count, where and why it stopped). Exit 0 when a result was
 * produced, whatever it is; 1 if DNS could not be set up; 2 on usage errors.
 */
#include "cli/cli.h"
#include "conf/conf.h"
#include "dns/resolver.h"
#include "engine/spfrun.h"
#include "spf/header.h"
#include "spf/spf.h"
#include "util/addr.h"
#include "util/json.h"
#include "util/xalloc.h"

#include <event2/event.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct check_ctx {
	bool done;
	bool json;
	char *trace;   /* collected trace text (owned) */
	size_t tlen, tcap;
	/* copies of the outcome */
	enum spf_result result;
	char *explanation, *mechanism, *problem, *domain;
	unsigned lookups, void_lookups, queries;
};

static void check_trace(void *arg, int depth, const char *line)
{
	struct check_ctx *c = arg;
	size_t need = (size_t)depth * 2 + strlen(line) + 2;
	if (c->tlen + need + 1 > c->tcap) {
		c->tcap = (c->tlen + need + 1) * 2;
		c->trace = xrealloc(c->trace, c->tcap);
	}
	for (int i = 0; i < depth; i++) {
		c->trace[c->tlen++] = ' ';
		c->trace[c->tlen++] = ' ';
	}
	size_t n = strlen(line);
	memcpy(c->trace + c->tlen, line, n);
	c->tlen += n;
	c->trace[c->tlen++] = '\n';
	c->trace[c->tlen] = '\0';
}

static char *dup_or_null(const char *s)
{
	return s ? xstrdup(s) : NULL;
}

static void check_done(void *arg, const struct spf_outcome *o)
{
	struct check_ctx *c = arg;
	c->done = true;
	c->result = o->result;
	c->explanation = dup_or_null(o->explanation);
	c->mechanism = dup_or_null(o->mechanism);
	c->problem = dup_or_null(o->problem);
	c->domain = dup_or_null(o->domain);
	c->lookups = o->lookups;
	c->void_lookups = o->void_lookups;
	c->queries = o->queries;
}

static void usage(FILE *out)
{
	fprintf(out,
		"usage: greyspf check --ip IP --sender ADDR --helo NAME "
		"[--dns SERVERS]\n"
		"                     [--dns-timeout S] [--trace] [--json] "
		"[-c FILE]\n\n"
		"Checks SPF (RFC 7208) for MAIL FROM ADDR (postmaster@NAME "
		"when ADDR is \"\")\nsent from IP, as the daemon would.\n\n"
		"  --dns SERVERS      comma-separated ADDR[@PORT] to ask "
		"(default: [dns] servers,\n"
		"                     else /etc/resolv.conf)\n"
		"  --dns-timeout S    per-query timeout in seconds (default "
		"[dns] timeout)\n"
		"  --trace            print the evaluation as a tree\n"
		"  --json             one JSON object: result, explanation, "
		"mechanism, ...\n"
		"  -c FILE            configuration (hostname, [dns], [spf]); "
		"default: built-in\n");
}

static void json_field(const char *name, const char *v, bool comma)
{
	printf("\"%s\":", name);
	if (v)
		json_write_string(stdout, v, strlen(v));
	else
		printf("null");
	if (comma)
		putchar(',');
}

int cmd_check(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"ip", required_argument, NULL, 'i'},
		{"sender", required_argument, NULL, 's'},
		{"helo", required_argument, NULL, 'H'},
		{"dns", required_argument, NULL, 'd'},
		{"dns-timeout", required_argument, NULL, 't'},
		{"trace", no_argument, NULL, 'T'},
		{"json", no_argument, NULL, 'j'},
		{"config", required_argument, NULL, 'c'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	const char *ip = NULL, *sender = NULL, *helo = NULL, *dns = NULL;
	const char *file = NULL;
	double timeout = 0;
	bool trace = false, json = false;
	int ch;
	optind = 1;
	while ((ch = getopt_long(argc, argv, "c:h", longopts, NULL)) != -1) {
		switch (ch) {
		case 'i':
			ip = optarg;
			break;
		case 's':
			sender = optarg;
			break;
		case 'H':
			helo = optarg;
			break;
		case 'd':
			dns = optarg;
			break;
		case 't': {
			char *end;
			timeout = strtod(optarg, &end);
			if (*end != '\0' || timeout <= 0 || timeout > 60) {
				fprintf(stderr, "greyspf check: bad "
						"--dns-timeout\n");
				return 2;
			}
			break;
		}
		case 'T':
			trace = true;
			break;
		case 'j':
			json = true;
			break;
		case 'c':
			file = optarg;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc || ip == NULL || sender == NULL || helo == NULL) {
		usage(stderr);
		return 2;
	}
	struct addr a;
	if (addr_parse(ip, &a) != 0) {
		fprintf(stderr, "greyspf check: \"%s\" is not an IP address\n",
			ip);
		return 2;
	}
	char err[1024];
	struct conf *c = file ? conf_load(file, err, sizeof(err))
			      : conf_defaults();
	if (c == NULL) {
		fprintf(stderr, "greyspf: %s\n", err);
		return 2;
	}
	struct event_base *base = event_base_new();
	struct dns_config dc = {
		.servers = dns ? dns : c->dns_servers,
		.recursion = c->dns_recursion,
		.timeout = timeout > 0 ? timeout
				       : (double)c->dns_timeout_ms / 1000.0,
	};
	struct dns_resolver *r =
		base ? dns_resolver_new(base, &dc, err, sizeof(err)) : NULL;
	if (r == NULL) {
		fprintf(stderr, "greyspf check: DNS: %s\n",
			base ? err : "no event loop");
		if (base)
			event_base_free(base);
		conf_unref(c);
		return 1;
	}
	struct check_ctx ctx = {.json = json};
	struct spf_request rq;
	spf_request_init(&rq, SPF_ID_MAILFROM, &a, sender, helo, c->hostname);
	rq.max_void = (int)c->max_void;
	if (trace) {
		rq.trace = check_trace;
		rq.trace_arg = &ctx;
	}
	spfrun_start(base, r, &rq, (double)c->spf_time_limit, check_done,
		     &ctx);
	while (!ctx.done)
		if (event_base_loop(base, EVLOOP_ONCE) != 0)
			break;

	int status = 0;
	if (!ctx.done) {
		fprintf(stderr, "greyspf check: the event loop failed\n");
		status = 1;
	} else {
		char hdr[SPF_HEADER_MAX];
		struct spf_header_info hi = {
			.result = ctx.result,
			.identity = SPF_ID_MAILFROM,
			.ip = &a,
			.sender = sender,
			.helo = helo,
			.receiver = c->hostname,
			.mechanism = ctx.mechanism,
			.problem = ctx.problem,
		};
		if (spf_header_received(&hi, hdr, sizeof(hdr)) < 0)
			hdr[0] = '\0';
		const char *second = ctx.explanation ? ctx.explanation
				     : ctx.problem   ? ctx.problem
						     : "";
		if (json) {
			printf("{");
			json_field("result", spf_result_name(ctx.result), true);
			json_field("explanation", ctx.explanation, true);
			json_field("mechanism", ctx.mechanism, true);
			json_field("problem", ctx.problem, true);
			json_field("domain", ctx.domain, true);
			printf("\"lookups\":%u,\"void_lookups\":%u,"
			       "\"queries\":%u,",
			       ctx.lookups, ctx.void_lookups, ctx.queries);
			json_field("received_spf", hdr, ctx.trace != NULL);
			if (ctx.trace)
				json_field("trace", ctx.trace, false);
			printf("}\n");
		} else {
			printf("%s\n%s\n%s\n", spf_result_name(ctx.result),
			       second, hdr);
			if (ctx.trace)
				printf("\n%s", ctx.trace);
		}
	}
	free(ctx.trace);
	free(ctx.explanation);
	free(ctx.mechanism);
	free(ctx.problem);
	free(ctx.domain);
	dns_resolver_free(r);
	event_base_free(base);
	conf_unref(c);
	return status;
}
