/*
 * server - the event loop: listeners, connections, signals, lifecycle.
 *
 * One process, one thread, one libevent loop. Each connection reads policy
 * requests, hands them one at a time to the engine and writes exactly one
 * reply per request. A request that breaks a limit or is malformed is logged
 * (escaped, bounded) and the connection is closed without a reply, as
 * SMTPD_POLICY_README asks; every other connection goes on. Every accepted
 * request is answered before `reply_deadline`: if the engine has not
 * answered by then, the connection gets the safe answer (DUNNO) and the late
 * decision is dropped.
 *
 * Signals: SIGHUP reloads the configuration and lists (an invalid new
 * configuration is logged and the old one kept); SIGTERM/SIGINT stop
 * accepting, let requests in flight finish (bounded by reply_deadline), and
 * return.
 */
#ifndef GREYSPF_SERVER_SERVER_H
#define GREYSPF_SERVER_SERVER_H

#include "server/listen.h"

struct conf;
struct store;
struct engine;
struct event_base;

/* A connection with no request for this long is closed: Postfix closes its
 * own after smtpd_policy_service_max_idle (300s) and max_ttl (1000s), so
 * anything idle longer is a dead peer. */
#define SERVER_IDLE_TIMEOUT 1200
/* Housekeeping period (expiry batch, whitelist refresh), milliseconds. */
#define SERVER_TICK_MS 200
/* Most bytes read from one connection per event, so one fast client cannot
 * starve the others. */
#define SERVER_READ_CHUNK 16384

struct server;

/*
 * Creates the server on base for already opened listeners (taken over:
 * closed by server_free()). conf_file is re-read on SIGHUP. The engine and
 * the store stay the caller's.
 */
struct server *server_new(struct event_base *base, struct listen_set *ls,
			  const char *conf_file, struct conf *conf,
			  struct engine *engine);

/* Serves one already connected stream (spawn mode): reads rfd, writes wfd
 * (the same descriptor for a socket). The loop ends when it closes. */
int server_add_stream(struct server *s, int rfd, int wfd);

/* Runs the loop until SIGTERM/SIGINT (or, in stream mode, EOF). */
int server_run(struct server *s);

void server_free(struct server *s);

/* Open policy connections (for metrics). */
size_t server_connections(const struct server *s);

#endif
