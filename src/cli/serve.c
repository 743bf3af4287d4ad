/*
 * serve - `greyspf serve` (the daemon) and `greyspf policy` (spawn mode).
 *
 * Start-up order for `serve`: load and validate the configuration and the
 * whitelists, bind the listeners (root may be needed for the socket
 * directory), create the store directory owned by `user`, drop privileges,
 * then open the store. Opening the store after the drop makes its files
 * belong to `user` from the start, so spawn-mode processes running as that
 * user share them.
 */
#include "cli/cli.h"
#include "conf/conf.h"
#include "dns/resolver.h"
#include "engine/engine.h"
#include "server/listen.h"
#include "server/metrics.h"
#include "server/privdrop.h"
#include "server/server.h"
#include "store/store.h"
#include "util/log.h"

#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

struct serve_opts {
	const char *conf_file;
	bool stderr_log; /* -v: log to stderr whatever the config says */
};

static int parse_opts(int argc, char **argv, const char *cmd,
		      struct serve_opts *o)
{
	static const struct option longopts[] = {
		{"config", required_argument, NULL, 'c'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	int ch;
	optind = 1;
	while ((ch = getopt_long(argc, argv, "c:h", longopts, NULL)) != -1) {
		switch (ch) {
		case 'c':
			o->conf_file = optarg;
			break;
		case 'h':
			printf("usage: greyspf %s [-c FILE]\n\n", cmd);
			if (strcmp(cmd, "serve") == 0)
				printf("Runs the policy daemon in the foreground "
				       "on the listeners of `listen`.\n"
				       "SIGHUP reloads the configuration, "
				       "SIGTERM stops after the requests in "
				       "flight.\n");
			else
				printf("Serves one Postfix policy connection on "
				       "stdin/stdout, for master.cf:\n"
				       "  greyspf unix - n n - 0 spawn "
				       "user=greyspf argv=/usr/sbin/greyspf "
				       "policy -c /etc/greyspf/greyspf.conf\n"
				       "Logs to syslog only.\n");
			printf("\n  -c, --config FILE  configuration file "
			       "(default %s)\n",
			       CONF_DEFAULT_FILE);
			return 1;
		default:
			return -1;
		}
	}
	if (optind != argc) {
		fprintf(stderr, "greyspf %s: unexpected argument \"%s\"\n", cmd,
			argv[optind]);
		return -1;
	}
	if (o->conf_file == NULL)
		o->conf_file = CONF_DEFAULT_FILE;
	return 0;
}

/* Creates the store directory and gives it to the daemon's user. */
static int prepare_store_dir(const struct conf *c, uid_t uid, gid_t gid,
			     bool chown_it, char *err, size_t errsize)
{
	if (c->backend != CONF_BACKEND_LMDB)
		return 0;
	/* Missing parents are created as by mkdir -p (mode 0755); the store
	 * directory itself is private to the daemon's user. */
	char path[4096];
	snprintf(path, sizeof(path), "%s", c->store_path);
	for (char *p = path + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(path, 0755) != 0 && errno != EEXIST) {
			snprintf(err, errsize, "%.200s: %s", path,
				 strerror(errno));
			return -1;
		}
		*p = '/';
	}
	if (mkdir(c->store_path, 0750) != 0 && errno != EEXIST) {
		snprintf(err, errsize, "%s: %s", c->store_path,
			 strerror(errno));
		return -1;
	}
	if (!chown_it)
		return 0;
	/* Root changes the owner of this path: never through a symbolic link
	 * that the unprivileged user could have put there. */
	int fd = open(c->store_path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
					     O_CLOEXEC);
	if (fd < 0 || fchown(fd, uid, gid) != 0) {
		snprintf(err, errsize, "chown %s: %s", c->store_path,
			 strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	close(fd);
	return 0;
}

/* Root decides here: drop to `user`, or stay root if allowed. */
static int drop_root(const struct conf *c, char *err, size_t errsize)
{
	if (geteuid() != 0)
		return prepare_store_dir(c, 0, 0, false, err, errsize);
	if (c->user[0] == '\0') {
		if (!c->allow_root) {
			snprintf(err, errsize,
				 "refusing to serve as root: set `user` "
				 "(or allow_root = yes)");
			return -1;
		}
		return prepare_store_dir(c, 0, 0, false, err, errsize);
	}
	uid_t uid;
	gid_t gid;
	if (privdrop_lookup(c->user, c->group, &uid, &gid, err, errsize) != 0)
		return -1;
	if (prepare_store_dir(c, uid, gid, true, err, errsize) != 0)
		return -1;
	return privdrop_to(uid, gid, err, errsize);
}

/* SIGTERM, SIGINT and SIGHUP are fatal by default. They are held pending
 * while the server's handlers are not installed: during start-up (once
 * the listener is bound, Postfix or logrotate may signal us) and during
 * teardown (a second SIGTERM), so that they never kill us halfway. */
static void stop_signals(int how)
{
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	sigprocmask(how, &set, NULL);
}

/* Descriptors needed besides the connections: listeners, store, log, DNS,
 * metrics; our estimate with room to spare. */
#define SERVE_FD_RESERVE 64

/* The default soft RLIMIT_NOFILE (1024) is below the default
 * max_connections (4096): raise it as far as the hard limit allows, and
 * say so when that is not enough (the server then pauses accepting while
 * descriptors are short). */
static void raise_fd_limit(const struct conf *c)
{
	struct rlimit rl;
	rlim_t want = (rlim_t)c->max_connections + SERVE_FD_RESERVE;
	if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur >= want)
		return;
	struct rlimit nrl = rl;
	nrl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max >= want
			       ? want
			       : rl.rlim_max;
	if (nrl.rlim_cur > rl.rlim_cur && setrlimit(RLIMIT_NOFILE, &nrl) == 0)
		rl = nrl;
	if (rl.rlim_cur < want)
		log_warn("only %llu file descriptors (RLIMIT_NOFILE) for "
			 "max_connections = %lld: raise the limit or lower "
			 "max_connections",
			 (unsigned long long)rl.rlim_cur, c->max_connections);
}

/* Spawn mode serves one stream on stdin/stdout. epoll(7) refuses regular
 * files, so `greyspf policy < requests.txt` would hang; poll(2) takes any
 * descriptor and costs nothing for one connection. */
static struct event_base *new_base(bool spawn)
{
	if (!spawn)
		return event_base_new();
	struct event_config *cfg = event_config_new();
	if (cfg == NULL)
		return NULL;
	event_config_avoid_method(cfg, "epoll");
	struct event_base *b = event_base_new_with_config(cfg);
	event_config_free(cfg);
	return b;
}

static size_t metrics_conns(void *arg)
{
	return server_connections(arg);
}

static int run(const char *cmd, int argc, char **argv, bool spawn)
{
	struct serve_opts o = {0};
	int rc = parse_opts(argc, argv, cmd, &o);
	if (rc != 0)
		return rc > 0 ? 0 : 2;

	char err[1024];
	stop_signals(SIG_BLOCK);
	/* Spawn mode: stderr is the Postfix socket, so syslog from the start. */
	log_open(spawn ? LOG_TO_SYSLOG : LOG_TO_STDERR, "greyspf");
	struct conf *c = cli_load_conf(o.conf_file, err, sizeof(err));
	if (c == NULL) {
		if (spawn)
			log_err("%s", err);
		else
			fprintf(stderr, "greyspf: %s\n", err);
		return 1;
	}
	if (!spawn && c->log == CONF_LOG_SYSLOG) {
		log_close();
		log_open(LOG_TO_SYSLOG, "greyspf");
	}
	if (c->debug)
		log_set_level(LOG_LVL_DEBUG);
	if (!spawn)
		raise_fd_limit(c);

	struct engine_lists *lists = engine_lists_load(c, err, sizeof(err));
	struct listen_set ls = {0};
	struct store *st = NULL;
	struct event_base *base = NULL;
	struct engine *eng = NULL;
	struct dns_resolver *dns = NULL;
	struct metrics *met = NULL;
	struct server *srv = NULL;
	int status = 1;

	if (lists == NULL) {
		log_err("%s", err);
		goto out;
	}
	if (!spawn) {
		struct listen_unix_perm perm = {
			.mode = (mode_t)c->socket_mode,
			.owner = c->socket_owner,
			.group = c->socket_group,
		};
		if (listen_open(c->listen, &perm, &ls, err, sizeof(err)) != 0) {
			log_err("%s", err);
			goto out;
		}
	}
	if (drop_root(c, err, sizeof(err)) != 0) {
		log_err("%s", err);
		goto out;
	}
	base = new_base(spawn);
	if (base == NULL) {
		log_err("cannot create the event loop");
		goto out;
	}
	st = cli_open_store(c, base, false, err, sizeof(err));
	if (st == NULL) {
		log_err("store: %s", err);
		goto out;
	}
	struct dns_config dc = {
		.servers = c->dns_servers,
		.recursion = c->dns_recursion,
		.timeout = (double)c->dns_timeout_ms / 1000.0,
	};
	dns = dns_resolver_new(base, &dc, err, sizeof(err));
	if (dns == NULL) {
		log_err("dns: %s", err);
		goto out;
	}
	eng = engine_new(base, c, lists, st, dns);
	lists = NULL;
	for (size_t i = 0; i < ls.n; i++)
		log_info("listening on %s", ls.v[i].name);
	srv = server_new(base, spawn ? NULL : &ls, o.conf_file, c, eng);
	/* The handlers are in place: what arrived meanwhile is handled now. */
	stop_signals(SIG_UNBLOCK);
	if (spawn) {
		if (server_add_stream(srv, 0, 1) != 0) {
			log_err("spawn mode: stdin/stdout unusable: %s",
				strerror(errno));
			goto out;
		}
	} else {
		if (c->metrics[0] != '\0') {
			met = metrics_new(base, c->metrics, eng, dns,
					  metrics_conns, srv, err, sizeof(err));
			if (met == NULL) {
				log_err("%s", err);
				goto out;
			}
			log_info("metrics on %s/metrics", c->metrics);
		}
		log_info("greyspf %s serving (store %s, checks from %s)",
			 GREYSPF_VERSION,
			 c->backend == CONF_BACKEND_LMDB ? "lmdb" : "redis",
			 o.conf_file);
	}
	status = server_run(srv) == 0 ? 0 : 1;
	/* The loop is over and server_free() gives the signals back their
	 * default action: a second SIGTERM must not cut the store flush. */
	stop_signals(SIG_BLOCK);
	if (!spawn)
		log_info("stopped");
out:
	metrics_free(met);
	server_free(srv);
	engine_free(eng);
	if (dns)
		dns_resolver_free(dns);
	if (st) {
		store_flush(st, err, sizeof(err));
		store_close(st);
	}
	listen_close(&ls, 1);
	engine_lists_free(lists);
	if (base)
		event_base_free(base);
	conf_unref(c);
	log_close();
	return status;
}

int cmd_serve(int argc, char **argv)
{
	return run("serve", argc, argv, false);
}

int cmd_policy(int argc, char **argv)
{
	return run("policy", argc, argv, true);
}
