/*
 * metrics - Prometheus text exposition of the daemon's counters; see
 * metrics.h.
 */
#include "server/metrics.h"
#include "server/listen.h"
#include "dns/resolver.h"
#include "engine/engine.h"
#include "spf/spf.h"
#include "util/str.h"
#include "util/xalloc.h"

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct metrics {
	struct evhttp *http;
	struct engine *engine;
	struct dns_resolver *dns;
	metrics_conns_fn conns;
	void *conns_arg;
};

static void counter(struct evbuffer *b, const char *name, const char *help,
		    const char *labels, unsigned long long v)
{
	if (help != NULL)
		evbuffer_add_printf(b, "# HELP %s %s\n# TYPE %s counter\n",
				    name, help, name);
	evbuffer_add_printf(b, "%s%s %llu\n", name, labels ? labels : "", v);
}

static void gauge(struct evbuffer *b, const char *name, const char *help,
		  unsigned long long v)
{
	evbuffer_add_printf(b, "# HELP %s %s\n# TYPE %s gauge\n%s %llu\n", name,
			    help, name, name, v);
}

static void metrics_cb(struct evhttp_request *req, void *arg)
{
	struct metrics *m = arg;
	const char *uri = evhttp_request_get_uri(req);
	if (evhttp_request_get_command(req) != EVHTTP_REQ_GET ||
	    uri == NULL || strncmp(uri, "/metrics", 8) != 0 ||
	    (uri[8] != '\0' && uri[8] != '?')) {
		evhttp_send_error(req, HTTP_NOTFOUND, NULL);
		return;
	}
	const struct engine_counters *c = engine_counters(m->engine);
	struct evbuffer *b = evbuffer_new();
	if (b == NULL) {
		evhttp_send_error(req, HTTP_INTERNAL, NULL);
		return;
	}
	counter(b, "greyspf_requests_total", "Policy requests decided", NULL,
		c->requests);
	static const char *const name = "greyspf_greylist_total";
	counter(b, name, "Greylisting verdicts", "{verdict=\"initial\"}",
		c->initial);
	counter(b, name, NULL, "{verdict=\"pending\"}", c->pending);
	counter(b, name, NULL, "{verdict=\"allowed\"}", c->allowed);
	counter(b, name, NULL, "{verdict=\"training\"}", c->training);
	counter(b, name, NULL, "{verdict=\"whitelisted\"}", c->whitelisted);
	counter(b, name, NULL, "{verdict=\"auto_whitelisted\"}",
		c->auto_whitelisted);
	for (int r = 0; r < SPF_NRESULTS; r++) {
		char labels[48];
		snprintf(labels, sizeof(labels), "{result=\"%s\"}",
			 spf_result_name((enum spf_result)r));
		counter(b, "greyspf_spf_results_total",
			r == 0 ? "SPF evaluations by result" : NULL, labels,
			c->spf_result[r]);
	}
	counter(b, "greyspf_spf_rejected_total",
		"Requests rejected for their SPF result", NULL, c->spf_rejected);
	counter(b, "greyspf_spf_deferred_total",
		"Requests deferred for their SPF result", NULL, c->spf_deferred);
	counter(b, "greyspf_spf_skipped_total",
		"Messages from skip_clients, not checked", NULL, c->spf_skipped);
	counter(b, "greyspf_store_errors_total",
		"Requests answered per on_store_error", NULL, c->store_errors);
	counter(b, "greyspf_bad_requests_total",
		"Requests without a usable client address", NULL,
		c->bad_requests);
	gauge(b, "greyspf_connections", "Open policy connections",
	      m->conns ? m->conns(m->conns_arg) : 0);
	gauge(b, "greyspf_dns_pending", "DNS lookups in flight",
	      m->dns ? dns_pending(m->dns) : 0);
	uint64_t hits = 0, misses = 0;
	size_t entries = 0;
	if (m->dns)
		dns_cache_counts(m->dns, &hits, &misses, &entries);
	counter(b, "greyspf_dns_cache_hits_total",
		"DNS lookups answered from greyspf's answer cache", NULL, hits);
	counter(b, "greyspf_dns_cache_misses_total",
		"DNS lookups sent to the resolver", NULL, misses);
	gauge(b, "greyspf_dns_cache_entries", "Answers held in the cache",
	      entries);
	evhttp_add_header(evhttp_request_get_output_headers(req),
			  "Content-Type", "text/plain; version=0.0.4");
	evhttp_send_reply(req, HTTP_OK, "OK", b);
	evbuffer_free(b);
}

struct metrics *metrics_new(struct event_base *base, const char *endpoint,
			    struct engine *engine, struct dns_resolver *dns,
			    metrics_conns_fn conns, void *conns_arg, char *err,
			    size_t errsize)
{
	char host[256];
	int port;

	if (listen_parse_inet(endpoint, host, sizeof(host), &port, err,
			      errsize) != 0)
		return NULL;
	if (port == 0) {
		snprintf(err, errsize, "metrics: port 0");
		return NULL;
	}
	struct metrics *m = xcalloc(1, sizeof(*m));
	m->http = evhttp_new(base);
	if (m->http == NULL ||
	    evhttp_bind_socket(m->http, host, (ev_uint16_t)port) != 0) {
		snprintf(err, errsize, "metrics: cannot listen on %s",
			 endpoint);
		if (m->http)
			evhttp_free(m->http);
		free(m);
		return NULL;
	}
	/* A scrape is small; refuse anything big or slow. */
	evhttp_set_max_headers_size(m->http, 8192);
	evhttp_set_max_body_size(m->http, 0);
	evhttp_set_timeout(m->http, 10);
	evhttp_set_allowed_methods(m->http, EVHTTP_REQ_GET);
	m->engine = engine;
	m->dns = dns;
	m->conns = conns;
	m->conns_arg = conns_arg;
	evhttp_set_gencb(m->http, metrics_cb, m);
	return m;
}

void metrics_free(struct metrics *m)
{
	if (m == NULL)
		return;
	evhttp_free(m->http);
	free(m);
}
