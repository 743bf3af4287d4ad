/*
 * dunno_server - the calibration peer for loadgen.
 *
 * A policy "server" that does the least work the protocol allows: it never
 * parses a request, it only watches for the empty line that ends one and
 * answers "action=DUNNO\n\n". Its rate with loadgen is the ceiling of the
 * harness on this machine: a real daemon's figure means something only
 * next to it.
 *
 * One thread, epoll, level-triggered. Replies owed to a connection are a
 * counter, so a client that pipelines (Postfix never does) is still answered
 * in order. Binds only loopback addresses or a unix socket (team rule).
 *
 * usage: dunno_server [--duration S] inet:HOST:PORT | unix:/path
 * Runs until SIGINT/SIGTERM, or for S seconds.
 */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "endpoint.h"

#define DS_REPLY "action=DUNNO\n\n"
#define DS_REPLY_LEN (sizeof(DS_REPLY) - 1)
/* Enough for thousands of simultaneous connects (loadgen hold mode);
 * the kernel caps it at net.core.somaxconn. */
#define DS_BACKLOG 4096
/* Bytes read per read(2); a full Postfix request is under 1 KiB. */
#define DS_READ_BUF 16384
/* Replies written per write(2) when several are owed. */
#define DS_BATCH 64
/* A server left running by mistake stops by itself after a day at most. */
#define DS_MAX_DURATION_S 86400.0

struct ds_conn {
	bool open;
	bool want_out; /* EPOLLOUT requested: a reply was cut short */
	bool prev_nl;  /* last byte seen was '\n' */
	bool in_req;   /* bytes of a request seen since the last reply */
	size_t owed;   /* replies not yet fully written */
	size_t off;    /* bytes of the first owed reply already written */
};

static struct ds_conn *conns;
static size_t nconns;
static int epfd;
static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

static void die(const char *msg)
{
	fprintf(stderr, "dunno_server: %s\n", msg);
	exit(2);
}

static void die_errno(const char *what)
{
	fprintf(stderr, "dunno_server: %s: %s\n", what, strerror(errno));
	exit(2);
}

static struct ds_conn *conn_get(int fd)
{
	if ((size_t)fd >= nconns) {
		size_t n = nconns ? nconns : 1024;
		while (n <= (size_t)fd)
			n *= 2;
		conns = realloc(conns, n * sizeof(*conns));
		if (conns == NULL)
			die("out of memory");
		memset(conns + nconns, 0, (n - nconns) * sizeof(*conns));
		nconns = n;
	}
	return &conns[fd];
}

static void conn_close(int fd)
{
	conns[fd].open = false;
	close(fd);
}

static void set_out(int fd, struct ds_conn *c, bool want)
{
	struct epoll_event ev = {0};

	if (c->want_out == want)
		return;
	ev.events = EPOLLIN | (want ? EPOLLOUT : 0);
	ev.data.fd = fd;
	if (epoll_ctl(epfd, EPOLL_CTL_MOD, fd, &ev) < 0)
		die_errno("epoll_ctl");
	c->want_out = want;
}

/* Writes the owed replies; returns false if the connection was closed. */
static bool flush_replies(int fd, struct ds_conn *c)
{
	char buf[DS_BATCH * DS_REPLY_LEN];

	while (c->owed > 0) {
		size_t k = c->owed < DS_BATCH ? c->owed : DS_BATCH, i, len;
		ssize_t n;

		for (i = 0; i < k; i++)
			memcpy(buf + i * DS_REPLY_LEN, DS_REPLY, DS_REPLY_LEN);
		len = k * DS_REPLY_LEN - c->off;
		n = write(fd, buf + c->off, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN) {
				set_out(fd, c, true);
				return true;
			}
			conn_close(fd);
			return false;
		}
		c->off += (size_t)n;
		c->owed -= c->off / DS_REPLY_LEN;
		c->off %= DS_REPLY_LEN;
	}
	set_out(fd, c, false);
	return true;
}

static void on_readable(int fd, struct ds_conn *c)
{
	unsigned char buf[DS_READ_BUF];
	ssize_t n, i;

	n = read(fd, buf, sizeof(buf));
	if (n < 0) {
		if (errno == EAGAIN || errno == EINTR)
			return;
		conn_close(fd);
		return;
	}
	if (n == 0) {
		conn_close(fd);
		return;
	}
	/* An empty line after some request bytes ends one request. */
	for (i = 0; i < n; i++) {
		if (buf[i] == '\n' && c->prev_nl && c->in_req) {
			c->owed++;
			c->in_req = false;
			c->prev_nl = false;
			continue;
		}
		c->prev_nl = buf[i] == '\n';
		c->in_req = true;
	}
	if (c->owed > 0 && !c->want_out)
		flush_replies(fd, c);
}

static void on_accept(int lfd)
{
	for (;;) {
		struct epoll_event ev = {0};
		struct ds_conn *c;
		int one = 1;
		int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (fd < 0) {
			if (errno == EAGAIN || errno == EINTR ||
			    errno == ECONNABORTED)
				return;
			if (errno == EMFILE || errno == ENFILE) {
				fprintf(stderr, "dunno_server: accept: %s\n",
					strerror(errno));
				return;
			}
			die_errno("accept4");
		}
		(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one,
				 sizeof(one));
		c = conn_get(fd);
		memset(c, 0, sizeof(*c));
		c->open = true;
		ev.events = EPOLLIN;
		ev.data.fd = fd;
		if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
			die_errno("epoll_ctl");
	}
}


static int listen_on(const char *target)
{
	struct sockaddr_storage ss;
	socklen_t len;
	char err[256];
	int fd, one = 1;

	if (endpoint_parse(target, true, &ss, &len, err, sizeof(err)) != 0)
		die(err);
	if (ss.ss_family == AF_UNIX) {
		const char *path = ((struct sockaddr_un *)&ss)->sun_path;
		struct stat st;
		/* Replace a stale socket of ours, never a regular file. */
		if (lstat(path, &st) == 0 && S_ISSOCK(st.st_mode))
			unlink(path);
	}
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
		    0);
	if (fd < 0)
		die_errno("socket");
	if (ss.ss_family != AF_UNIX)
		(void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one,
				 sizeof(one));
	if (bind(fd, (struct sockaddr *)&ss, len) < 0)
		die_errno(target);
	if (listen(fd, DS_BACKLOG) < 0)
		die_errno("listen");
	return fd;
}

int main(int argc, char **argv)
{
	struct epoll_event ev = {0}, events[256];
	struct sigaction sa = {0};
	struct rlimit rl;
	const char *target = NULL;
	double duration = DS_MAX_DURATION_S;
	struct timespec t0, t;
	int lfd, i;

	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--duration") == 0 && i + 1 < argc) {
			char *end;
			duration = strtod(argv[++i], &end);
			if (*end != '\0' || !(duration > 0) ||
			    duration > DS_MAX_DURATION_S)
				die("bad --duration");
		} else if (argv[i][0] != '-' && target == NULL) {
			target = argv[i];
		} else {
			fprintf(stderr, "usage: dunno_server [--duration S] "
					"inet:HOST:PORT | unix:/path\n");
			return 2;
		}
	}
	if (target == NULL) {
		fprintf(stderr, "usage: dunno_server [--duration S] "
				"inet:HOST:PORT | unix:/path\n");
		return 2;
	}
	/* Serve as many connections as the hard limit allows. */
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		(void)setrlimit(RLIMIT_NOFILE, &rl);
	}
	sa.sa_handler = on_signal;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	lfd = listen_on(target);
	epfd = epoll_create1(EPOLL_CLOEXEC);
	if (epfd < 0)
		die_errno("epoll_create1");
	ev.events = EPOLLIN;
	ev.data.fd = lfd;
	if (epoll_ctl(epfd, EPOLL_CTL_ADD, lfd, &ev) < 0)
		die_errno("epoll_ctl");
	clock_gettime(CLOCK_MONOTONIC, &t0);

	while (!stop) {
		int n = epoll_wait(epfd, events, 256, 200);

		if (n < 0 && errno != EINTR)
			die_errno("epoll_wait");
		for (i = 0; i < n; i++) {
			int fd = events[i].data.fd;
			struct ds_conn *c;

			if (fd == lfd) {
				on_accept(lfd);
				continue;
			}
			c = conn_get(fd);
			if (!c->open)
				continue;
			if (events[i].events & EPOLLOUT) {
				if (!flush_replies(fd, c))
					continue;
			}
			if (events[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR))
				on_readable(fd, c);
		}
		clock_gettime(CLOCK_MONOTONIC, &t);
		if ((double)(t.tv_sec - t0.tv_sec) +
			(double)(t.tv_nsec - t0.tv_nsec) / 1e9 >
		    duration)
			break;
	}
	if (strncmp(target, "unix:", 5) == 0)
		unlink(target + 5);
	return 0;
}
