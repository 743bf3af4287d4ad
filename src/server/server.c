/*
 * server - event loop, connections, signals and lifecycle; see server.h.
 *
 * Connection life: read into an evbuffer; frame and parse one request; hand
 * it to the engine; when the engine answers, write the reply and look for
 * the next request. A connection is freed only when no engine call is
 * outstanding for it, because the engine holds pointers into it.
 */
#include "server/server.h"
#include "conf/conf.h"
#include "engine/engine.h"
#include "policy/policy.h"
#include "util/log.h"
#include "util/xalloc.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

/* Connections accepted per listener event, so a flood of connects does
 * not starve established connections. */
#define SERVER_ACCEPT_BURST 64
/* Replies waiting for a peer that does not read, bytes: beyond this we stop
 * reading its requests (backpressure), so a client that writes without
 * reading cannot make us buffer without bound. 64 KiB is over a thousand
 * replies; Postfix itself has at most one outstanding. */
#define SERVER_OUT_MAX 65536
/* Request bytes read ahead of the one being decided: beyond this we stop
 * reading. With an asynchronous store (Redis) a client that pipelines
 * would otherwise have its whole stream buffered here while each request
 * waits for its round trips. Two of the largest requests. */
#define SERVER_IN_MAX (2 * POLICY_REQUEST_MAX)
/* Seconds a closed connection whose peer is still sending keeps reading
 * (and discarding) after our FIN. Closing a socket with unread input makes
 * the kernel send RST, which throws away replies not yet delivered; our
 * choice: long enough for a peer to see the FIN, short enough not to hold
 * up a restart. */
#define SERVER_LINGER_SEC 2
/* After accept() fails for lack of descriptors or memory the listeners rest
 * this long: the connection stays in the backlog and a level-triggered
 * listener would otherwise spin on it, flooding the log. Our choice: short
 * enough that Postfix hardly notices, long enough to cost no CPU. */
#define SERVER_ACCEPT_PAUSE_MS 100
/* At most one log line per this many seconds about such pauses. */
#define SERVER_ACCEPT_LOG_SEC 10

/* A request still incomplete this long after its first byte is closed:
 * Postfix writes a request in one go, so a peer that trickles bytes is
 * stuck or hostile (slowloris). Well below Postfix's own 100 s
 * smtpd_policy_service_timeout. */
#define SERVER_REQUEST_TIMEOUT 30
/* Input buffer: first allocation, and the size above which an empty
 * buffer is given back, so idle connections hold little memory. */
#define SERVER_IN_INITIAL 2048
#define SERVER_IN_KEEP 16384

/* One request handed to the engine. Normally it belongs to its connection
 * and answers through it; if reply_deadline passes first, the connection
 * answers DUNNO and lets go (c = NULL): the late decision is dropped and
 * the job frees itself, while the connection goes on with the next
 * request under its own deadline. */
struct conn_job {
	struct conn *c;
	struct policy_request req;
	struct engine_msg *msg; /* the connection's, or ours once let go */
};

struct conn {
	struct server *srv;
	struct conn *prev, *next;
	int rfd, wfd;
	struct event *rev, *wev, *timer;
	/* Request bytes: in[inoff .. inlen) not yet consumed. Our own linear
	 * buffer, so framing a request that arrives in pieces never copies
	 * what it already has. */
	unsigned char *in;
	size_t inoff, inlen, incap;
	size_t scanned;            /* policy_frame() position, from inoff */
	struct timespec req_start; /* first byte of the pending request */
	struct evbuffer *out;
	struct conn_job *job; /* in flight, or NULL */
	struct engine_msg *msg;
	bool closing;   /* free once the engine lets go and replies are out */
	bool eof;       /* the peer sent all it will send (half-close) */
	bool reading;   /* rev is added (see conn_update_reading) */
	bool lingering; /* FIN sent; input discarded until EOF or timeout */
	bool in_process;
	bool stream;    /* spawn mode: the loop ends with this connection */
	char peer[64];
};

struct server {
	struct event_base *base;
	struct listen_set ls;
	struct event *lev[LISTEN_MAX];
	struct event *sig_hup, *sig_term, *sig_int, *tick;
	char *conf_file;
	struct conf *conf;
	struct engine *engine;
	struct conn *conns;
	size_t nconns;
	bool stopping;
	uint64_t refused_logged;
	struct event *accept_resume;
	time_t accept_logged_at; /* last log line about a pause, 0: none */
	uint64_t accept_pauses;  /* pauses since that line */
};

static void conn_process(struct conn *c);

static size_t conn_pending(const struct conn *c)
{
	return c->inlen - c->inoff;
}

static void conn_consume(struct conn *c, size_t n)
{
	c->inoff += n;
	if (c->inoff == c->inlen) {
		c->inoff = c->inlen = 0;
		if (c->incap > SERVER_IN_KEEP) {
			free(c->in);
			c->in = NULL;
			c->incap = 0;
		}
	} else {
		/* The next request's bytes are already here. */
		clock_gettime(CLOCK_MONOTONIC, &c->req_start);
	}
}

static void conn_free(struct conn *c)
{
	struct server *s = c->srv;
	if (c->prev)
		c->prev->next = c->next;
	else
		s->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	s->nconns--;
	event_free(c->rev);
	if (c->wev)
		event_free(c->wev);
	event_free(c->timer);
	free(c->in);
	evbuffer_free(c->out);
	if (c->stream) {
		/* stdin/stdout belong to spawn(8); just stop the loop. */
		event_base_loopbreak(s->base);
	} else {
		close(c->rfd);
	}
	free(c->msg);
	free(c);
	if (s->stopping && s->nconns == 0)
		event_base_loopbreak(s->base);
}

/* Input the peer sent that we have not read: closing now would reset the
 * connection and lose the replies still in the kernel's send queue. */
static bool conn_unread_input(const struct conn *c)
{
	int n = 0;
	if (c->stream || c->eof)
		return false;
	return conn_pending(c) > 0 ||
	       (ioctl(c->rfd, FIONREAD, &n) == 0 && n > 0);
}

/* Sends FIN after the replies and reads (discarding) until the peer's EOF
 * or SERVER_LINGER_SEC, so that close() does not reset the connection. */
static void conn_linger(struct conn *c)
{
	struct timeval tv = {SERVER_LINGER_SEC, 0};
	c->lingering = true;
	c->inoff = c->inlen = 0;
	shutdown(c->wfd, SHUT_WR);
	event_add(c->rev, NULL);
	c->reading = true;
	event_add(c->timer, &tv);
}

/* Frees a closing connection once the engine has let go and every reply
 * is written (the write event or the idle timer come back here). */
static void conn_try_free(struct conn *c)
{
	if (c->job || c->in_process || c->lingering)
		return;
	if (evbuffer_get_length(c->out) > 0) {
		event_add(c->wev, NULL);
		return;
	}
	if (conn_unread_input(c)) {
		conn_linger(c);
		return;
	}
	conn_free(c);
}

/* Reads only while there is room on both sides: replies the peer has not
 * read, requests we have not decided yet. Once stopped, it resumes only
 * when half the room is free, not after every request. */
static void conn_update_reading(struct conn *c)
{
	if (c->lingering)
		return;
	size_t in_max = c->reading ? SERVER_IN_MAX : SERVER_IN_MAX / 2;
	bool want = !c->closing && !c->eof &&
		    evbuffer_get_length(c->out) < SERVER_OUT_MAX &&
		    conn_pending(c) < in_max;
	if (want == c->reading)
		return;
	if (want)
		event_add(c->rev, NULL);
	else
		event_del(c->rev);
	c->reading = want;
}

/* Stops reading; frees now, or once the engine has answered and the
 * replies already due are written. */
static void conn_close(struct conn *c)
{
	c->closing = true;
	conn_update_reading(c);
	conn_try_free(c);
}

static double since(const struct timespec *t0)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)(t.tv_sec - t0->tv_sec) +
	       (double)(t.tv_nsec - t0->tv_nsec) / 1e9;
}

/* One timer per connection: the reply deadline while a request is with the
 * engine; the rest of SERVER_REQUEST_TIMEOUT while a request is arriving;
 * else the idle timeout. */
static void conn_arm_timer(struct conn *c)
{
	struct timeval tv = {SERVER_IDLE_TIMEOUT, 0};
	if (c->job) {
		tv.tv_sec = (time_t)c->srv->conf->reply_deadline;
	} else if (conn_pending(c) > 0) {
		double left = SERVER_REQUEST_TIMEOUT - since(&c->req_start);
		if (left < 0)
			left = 0;
		tv.tv_sec = (time_t)left;
		tv.tv_usec = (suseconds_t)((left - (double)tv.tv_sec) * 1e6);
	}
	event_add(c->timer, &tv);
}

static void conn_flush(struct conn *c)
{
	while (evbuffer_get_length(c->out) > 0) {
		int n = evbuffer_write(c->out, c->wfd);
		if (n < 0) {
			if (errno == EAGAIN || errno == EWOULDBLOCK ||
			    errno == EINTR)
				break;
			log_warn("%s: write: %s", c->peer, strerror(errno));
			/* Nothing more can reach this peer. The caller frees
			 * it (conn_try_free): c must stay valid here. */
			evbuffer_drain(c->out, evbuffer_get_length(c->out));
			c->closing = true;
			conn_update_reading(c);
			return;
		}
	}
	if (evbuffer_get_length(c->out) > 0)
		event_add(c->wev, NULL);
}

static void conn_reply(struct conn *c, const char *action)
{
	char buf[POLICY_REPLY_MAX];
	int n = policy_format_reply(buf, sizeof(buf), action);
	if (n < 0) /* cannot happen with POLICY_REPLY_MAX; stay safe */
		n = policy_format_reply(buf, sizeof(buf), POLICY_DUNNO);
	evbuffer_add(c->out, buf, (size_t)n);
	conn_flush(c);
}

static void job_free(struct conn_job *job)
{
	policy_request_free(&job->req);
	if (job->c == NULL)
		free(job->msg); /* let go by its connection: ours */
	free(job);
}

/* The connection's request is answered: free it if it is closing, else
 * wait for (or take) the next request. */
static void conn_next(struct conn *c)
{
	if (c->closing) {
		conn_try_free(c);
		return;
	}
	conn_arm_timer(c);
	if (!c->in_process)
		conn_process(c);
}

static void conn_done(void *arg, const char *action)
{
	struct conn_job *job = arg;
	struct conn *c = job->c;
	job_free(job);
	if (c == NULL) /* answered by the deadline already */
		return;
	c->job = NULL;
	/* A closing connection still gets its reply: SIGTERM lets requests
	 * in flight finish, and a half-closed peer may still read. */
	conn_reply(c, action);
	conn_next(c);
}

/* reply_deadline passed: answer DUNNO now and let the engine finish the
 * job on its own; the connection gets a fresh copy of the message state. */
static void conn_let_go(struct conn *c)
{
	struct conn_job *job = c->job;
	log_warn("%s: no decision within reply_deadline (%llds); answering %s",
		 c->peer, (long long)c->srv->conf->reply_deadline,
		 POLICY_DUNNO);
	c->msg = xmalloc(sizeof(*c->msg));
	memcpy(c->msg, job->msg, sizeof(*c->msg));
	job->c = NULL;
	c->job = NULL;
	conn_reply(c, POLICY_DUNNO);
}

static void conn_bad(struct conn *c, const char *why)
{
	log_warn("%s: %s; closing the connection without a reply", c->peer,
		 why);
	conn_close(c);
}

static void conn_process(struct conn *c)
{
	char err[256];

	bool held = false; /* stopped for the peer to read its replies */

	c->in_process = true;
	while (!c->job && !c->closing) {
		if (evbuffer_get_length(c->out) >= SERVER_OUT_MAX) {
			/* The peer is not reading: take no more requests until
			 * conn_on_write has drained the replies. */
			held = true;
			break;
		}
		size_t len = conn_pending(c);
		if (len == 0)
			break;
		const unsigned char *data = c->in + c->inoff;
		size_t reqlen = 0;
		enum policy_frame_status st = policy_frame(
			data, len, &c->scanned, &reqlen, err, sizeof(err));
		if (st == POLICY_FRAME_MORE)
			break;
		if (st == POLICY_FRAME_ERROR) {
			conn_bad(c, err);
			break;
		}
		struct conn_job *job = xcalloc(1, sizeof(*job));
		int rc = policy_parse(data, reqlen, &job->req, err,
				      sizeof(err));
		conn_consume(c, reqlen);
		if (rc != 0) {
			free(job);
			conn_bad(c, err);
			break;
		}
		job->c = c;
		job->msg = c->msg;
		c->job = job;
		conn_arm_timer(c);
		engine_decide(c->srv->engine, &job->req, job->msg, conn_done,
			      job);
	}
	c->in_process = false;
	if (c->closing) {
		conn_try_free(c);
		return;
	}
	if (!c->job)
		conn_arm_timer(c);
	conn_update_reading(c);
	/* The peer half-closed and no complete request is left (a partial
	 * one can never complete): done once the replies are out. */
	if (c->eof && !c->job && !held)
		conn_close(c);
}

/* Reads what the peer sent into the input buffer. Returns read(2)'s
 * result. */
static ssize_t conn_read(struct conn *c, int fd)
{
	if (c->inoff > 0 && c->incap - c->inlen < SERVER_READ_CHUNK) {
		/* Requests consumed at the front: move the rest down. */
		memmove(c->in, c->in + c->inoff, c->inlen - c->inoff);
		c->inlen -= c->inoff;
		c->inoff = 0;
	}
	if (c->incap - c->inlen < SERVER_IN_INITIAL / 2) {
		size_t cap = c->incap ? c->incap * 2 : SERVER_IN_INITIAL;
		while (cap - c->inlen < SERVER_IN_INITIAL / 2)
			cap *= 2;
		c->in = xrealloc(c->in, cap);
		c->incap = cap;
	}
	size_t room = c->incap - c->inlen;
	if (room > SERVER_READ_CHUNK)
		room = SERVER_READ_CHUNK;
	ssize_t n = read(fd, c->in + c->inlen, room);
	if (n > 0) {
		if (c->inlen == c->inoff)
			clock_gettime(CLOCK_MONOTONIC, &c->req_start);
		c->inlen += (size_t)n;
	}
	return n;
}

static void conn_on_read(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;
	(void)what;
	if (c->lingering) {
		unsigned char junk[SERVER_READ_CHUNK];
		ssize_t r = read(fd, junk, sizeof(junk));
		if (r == 0 || (r < 0 && errno != EAGAIN &&
			       errno != EWOULDBLOCK && errno != EINTR))
			conn_free(c);
		return;
	}
	ssize_t n = conn_read(c, fd);
	if (n == 0) {
		/* The peer is done sending (it may still read, like `nc` with
		 * a file of requests): answer what is buffered, then close. */
		c->eof = true;
		conn_update_reading(c);
		conn_process(c);
		return;
	}
	if (n < 0) {
		if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
			return;
		log_warn("%s: read: %s", c->peer, strerror(errno));
		conn_close(c);
		return;
	}
	conn_process(c);
}

static void conn_on_write(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;
	(void)fd;
	(void)what;
	conn_flush(c);
	if (c->closing) {
		conn_try_free(c);
		return;
	}
	/* Room again for replies: take the requests held back. */
	if (!c->job && evbuffer_get_length(c->out) < SERVER_OUT_MAX)
		conn_process(c);
}

static void conn_on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;
	(void)fd;
	(void)what;
	if (c->lingering) {
		conn_free(c);
		return;
	}
	if (c->job) {
		conn_let_go(c);
		conn_next(c);
		return;
	}
	if (conn_pending(c) > 0 && !c->closing) {
		log_warn("%s: request still incomplete after %ds; closing the "
			 "connection",
			 c->peer, SERVER_REQUEST_TIMEOUT);
		conn_close(c);
		return;
	}
	log_debug("%s: idle for %ds, closing", c->peer, SERVER_IDLE_TIMEOUT);
	/* Replies it has not read in all that time are dropped. */
	evbuffer_drain(c->out, evbuffer_get_length(c->out));
	conn_close(c);
}

static struct conn *conn_new(struct server *s, int rfd, int wfd,
			     const char *peer, bool stream)
{
	struct conn *c = xcalloc(1, sizeof(*c));
	c->srv = s;
	c->rfd = rfd;
	c->wfd = wfd;
	c->stream = stream;
	c->msg = xcalloc(1, sizeof(*c->msg));
	snprintf(c->peer, sizeof(c->peer), "%s", peer);
	c->out = evbuffer_new();
	c->rev = event_new(s->base, rfd, EV_READ | EV_PERSIST, conn_on_read, c);
	c->wev = event_new(s->base, wfd, EV_WRITE, conn_on_write, c);
	c->timer = evtimer_new(s->base, conn_on_timer, c);
	if (!c->out || !c->rev || !c->wev || !c->timer) {
		log_err("out of memory creating a connection");
		abort();
	}
	c->next = s->conns;
	if (s->conns)
		s->conns->prev = c;
	s->conns = c;
	s->nconns++;
	conn_update_reading(c);
	conn_arm_timer(c);
	return c;
}

static void peer_name(const struct sockaddr_storage *ss, socklen_t len,
		      const char *listener, char *out, size_t outsize)
{
	char host[INET6_ADDRSTRLEN] = "?";
	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *in = (const void *)ss;
		evutil_inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
		snprintf(out, outsize, "%s:%u", host, ntohs(in->sin_port));
	} else if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const void *)ss;
		evutil_inet_ntop(AF_INET6, &in6->sin6_addr, host,
				 sizeof(host));
		snprintf(out, outsize, "[%s]:%u", host, ntohs(in6->sin6_port));
	} else {
		(void)len;
		snprintf(out, outsize, "%.40s", listener);
	}
}

static void server_on_accept_resume(evutil_socket_t fd, short what,
				    void *arg)
{
	struct server *s = arg;
	(void)fd;
	(void)what;
	if (s->stopping)
		return;
	for (size_t i = 0; i < s->ls.n; i++)
		if (s->lev[i])
			event_add(s->lev[i], NULL);
}

/* Out of descriptors (or memory): stop accepting for a moment. */
static void server_pause_accept(struct server *s, const char *lname, int err)
{
	time_t now = time(NULL);
	s->accept_pauses++;
	if (s->accept_logged_at == 0 ||
	    now - s->accept_logged_at >= SERVER_ACCEPT_LOG_SEC) {
		log_warn("accept on %s: %s; not accepting for %d ms "
			 "(%llu time(s) since the last such message)",
			 lname, strerror(err), SERVER_ACCEPT_PAUSE_MS,
			 (unsigned long long)s->accept_pauses);
		s->accept_logged_at = now;
		s->accept_pauses = 0;
	}
	for (size_t i = 0; i < s->ls.n; i++)
		if (s->lev[i])
			event_del(s->lev[i]);
	struct timeval tv = {0, SERVER_ACCEPT_PAUSE_MS * 1000};
	event_add(s->accept_resume, &tv);
}

static void server_on_accept(evutil_socket_t lfd, short what, void *arg)
{
	struct server *s = arg;
	(void)what;
	const char *lname = "unix";
	for (size_t i = 0; i < s->ls.n; i++)
		if (s->ls.v[i].fd == lfd)
			lname = s->ls.v[i].name;
	for (int i = 0; i < SERVER_ACCEPT_BURST; i++) {
		struct sockaddr_storage ss;
		socklen_t len = sizeof(ss);
		int fd = accept4(lfd, (struct sockaddr *)&ss, &len,
				 SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EMFILE || errno == ENFILE ||
			    errno == ENOBUFS || errno == ENOMEM)
				server_pause_accept(s, lname, errno);
			else if (errno != EAGAIN && errno != EWOULDBLOCK &&
				 errno != EINTR && errno != ECONNABORTED)
				log_warn("accept on %s: %s", lname,
					 strerror(errno));
			return;
		}
		if (s->stopping ||
		    s->nconns >= (size_t)s->conf->max_connections) {
			/* Log the first and then every 1000th refusal. */
			if (s->refused_logged++ % 1000 == 0)
				log_warn("refusing connection on %s: "
					 "max_connections (%lld) reached",
					 lname, s->conf->max_connections);
			close(fd);
			continue;
		}
		char peer[64];
		peer_name(&ss, len, lname, peer, sizeof(peer));
		conn_new(s, fd, fd, peer, false);
	}
}

static void server_reload(struct server *s)
{
	char err[512];
	struct conf *nc = conf_load(s->conf_file, err, sizeof(err));
	if (nc == NULL) {
		log_err("reload failed, keeping the running configuration: %s",
			err);
		return;
	}
	struct engine_lists *nl = engine_lists_load(nc, err, sizeof(err));
	if (nl == NULL) {
		log_err("reload failed, keeping the running configuration: %s",
			err);
		conf_unref(nc);
		return;
	}
	char changed[512];
	if (conf_restart_changes(s->conf, nc, changed, sizeof(changed)) > 0)
		log_warn("reload: %s changed; that takes effect only after a "
			 "restart",
			 changed);
	engine_reload(s->engine, nc, nl);
	conf_unref(s->conf);
	s->conf = nc; /* our reference from conf_load() */
	log_info("configuration reloaded from %s", s->conf_file);
}

static void server_stop(struct server *s)
{
	if (s->stopping)
		return;
	s->stopping = true;
	log_info("stopping: %zu connection(s) open", s->nconns);
	for (size_t i = 0; i < s->ls.n; i++)
		if (s->lev[i])
			event_del(s->lev[i]);
	/* Idle connections close now; busy ones after their reply. The
	 * spawn-mode stream too: waiting for Postfix to hang up would keep
	 * a stopped process alive for as long as smtpd holds it. */
	struct conn *c = s->conns, *next;
	for (; c; c = next) {
		next = c->next;
		conn_close(c);
	}
	if (s->nconns == 0)
		event_base_loopbreak(s->base);
	/* Never hang on shutdown: requests in flight have reply_deadline. */
	struct timeval tv = {(time_t)s->conf->reply_deadline + 1, 0};
	event_base_loopexit(s->base, &tv);
}

static void server_on_signal(evutil_socket_t sig, short what, void *arg)
{
	struct server *s = arg;
	(void)what;
	if (sig == SIGHUP)
		server_reload(s);
	else
		server_stop(s);
}

static void server_on_tick(evutil_socket_t fd, short what, void *arg)
{
	struct server *s = arg;
	(void)fd;
	(void)what;
	engine_tick(s->engine);
}

struct server *server_new(struct event_base *base, struct listen_set *ls,
			  const char *conf_file, struct conf *conf,
			  struct engine *engine)
{
	struct server *s = xcalloc(1, sizeof(*s));
	s->base = base;
	if (ls != NULL) {
		s->ls = *ls;
		memset(ls, 0, sizeof(*ls));
	}
	s->conf_file = conf_file ? xstrdup(conf_file) : NULL;
	s->conf = conf_ref(conf);
	s->engine = engine;
	for (size_t i = 0; i < s->ls.n; i++) {
		s->lev[i] = event_new(base, s->ls.v[i].fd, EV_READ | EV_PERSIST,
				      server_on_accept, s);
		event_add(s->lev[i], NULL);
	}
	signal(SIGPIPE, SIG_IGN);
	if (s->conf_file) {
		s->sig_hup = evsignal_new(base, SIGHUP, server_on_signal, s);
		event_add(s->sig_hup, NULL);
	}
	s->sig_term = evsignal_new(base, SIGTERM, server_on_signal, s);
	s->sig_int = evsignal_new(base, SIGINT, server_on_signal, s);
	event_add(s->sig_term, NULL);
	event_add(s->sig_int, NULL);
	s->accept_resume = evtimer_new(base, server_on_accept_resume, s);
	s->tick = event_new(base, -1, EV_PERSIST, server_on_tick, s);
	struct timeval tv = {0, SERVER_TICK_MS * 1000};
	event_add(s->tick, &tv);
	return s;
}

int server_add_stream(struct server *s, int rfd, int wfd)
{
	int flags;
	if ((flags = fcntl(rfd, F_GETFL)) < 0 ||
	    fcntl(rfd, F_SETFL, flags | O_NONBLOCK) < 0)
		return -1;
	if (wfd != rfd && ((flags = fcntl(wfd, F_GETFL)) < 0 ||
			   fcntl(wfd, F_SETFL, flags | O_NONBLOCK) < 0))
		return -1;
	conn_new(s, rfd, wfd, "spawn", true);
	return 0;
}

int server_run(struct server *s)
{
	/* Housekeeping once before the first request, not a tick later: it
	 * loads the store's whitelist, which would otherwise be ignored for
	 * the first SERVER_TICK_MS, i.e. for most of a spawn-mode process's
	 * requests. */
	engine_tick(s->engine);
	return event_base_dispatch(s->base) < 0 ? -1 : 0;
}

void server_free(struct server *s)
{
	if (s == NULL)
		return;
	/* Every engine operation has a timeout shorter than the shutdown
	 * grace period, so no request should still be in flight here. One
	 * that is is let go: the engine may still finish it, and the job then
	 * frees itself. */
	while (s->conns) {
		struct conn *c = s->conns;
		if (c->job) {
			log_err("%s: request still in flight at exit", c->peer);
			c->job->msg = c->msg;
			c->job->c = NULL;
			c->msg = NULL;
			c->job = NULL;
		}
		conn_free(c);
	}
	for (size_t i = 0; i < s->ls.n; i++)
		if (s->lev[i])
			event_free(s->lev[i]);
	listen_close(&s->ls, 1);
	if (s->sig_hup)
		event_free(s->sig_hup);
	event_free(s->sig_term);
	event_free(s->sig_int);
	event_free(s->tick);
	event_free(s->accept_resume);
	conf_unref(s->conf);
	free(s->conf_file);
	free(s);
}

size_t server_connections(const struct server *s)
{
	return s->nconns;
}
