/*
 * metrics - counters over HTTP in the Prometheus text format.
 *
 * `metrics = inet:127.0.0.1:9156` serves GET /metrics from the daemon's
 * own event loop (libevent's evhttp): decisions by verdict, SPF results,
 * store errors, open connections, DNS lookups in flight. Off when empty.
 * A scrape reads counters only; it never waits for the store or DNS.
 */
#ifndef GREYSPF_SERVER_METRICS_H
#define GREYSPF_SERVER_METRICS_H

#include <stddef.h>

struct event_base;
struct engine;
struct dns_resolver;
struct metrics;

/* Returns the number of open policy connections (the server's count). */
typedef size_t (*metrics_conns_fn)(void *arg);

/*
 * Binds "inet:HOST:PORT" on base. Returns NULL with a reason in err. The
 * engine and resolver must outlive the handle (dns may be NULL).
 */
struct metrics *metrics_new(struct event_base *base, const char *endpoint,
			    struct engine *engine, struct dns_resolver *dns,
			    metrics_conns_fn conns, void *conns_arg, char *err,
			    size_t errsize);
void metrics_free(struct metrics *m);

#endif
