/*
 * listen - listening sockets from `listen` endpoints; see listen.h.
 */
#include "server/listen.h"
#include "util/xalloc.h"
#include "util/str.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pwd.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

static int add_socket(struct listen_set *out, int fd, const char *name,
		      const char *path, char *err, size_t errsize)
{
	if (out->n >= LISTEN_MAX) {
		close(fd);
		snprintf(err, errsize, "more than %d listening sockets",
			 LISTEN_MAX);
		return -1;
	}
	struct listen_socket *s = &out->v[out->n++];
	s->fd = fd;
	s->name = xstrdup(name);
	s->path = path ? xstrdup(path) : NULL;
	return 0;
}

int listen_parse_inet(const char *spec, char *host, size_t hostsize,
		      int *port, char *err, size_t errsize)
{
	const char *hp, *colon;
	long long pn;

	if (strncmp(spec, "inet:", 5) != 0) {
		snprintf(err, errsize, "%s: expected inet:HOST:PORT", spec);
		return -1;
	}
	hp = spec + 5;
	if (*hp == '[') {
		const char *close = strchr(hp, ']');
		if (close == NULL || close[1] != ':') {
			snprintf(err, errsize, "%s: expected inet:[ADDR]:PORT",
				 spec);
			return -1;
		}
		snprintf(host, hostsize, "%.*s", (int)(close - hp - 1), hp + 1);
		colon = close + 1;
	} else {
		colon = strrchr(hp, ':');
		if (colon == NULL) {
			snprintf(err, errsize, "%s: expected inet:HOST:PORT",
				 spec);
			return -1;
		}
		snprintf(host, hostsize, "%.*s", (int)(colon - hp), hp);
	}
	if (str_parse_int(colon + 1, 0, 65535, &pn) != 0) {
		snprintf(err, errsize, "%s: bad port \"%.10s\"", spec,
			 colon + 1);
		return -1;
	}
	*port = (int)pn;
	return 0;
}

static int open_inet(const char *spec, struct listen_set *out, char *err,
		     size_t errsize)
{
	char host[256], port[16];
	int pn;
	if (listen_parse_inet(spec, host, sizeof(host), &pn, err, errsize) != 0)
		return -1;
	snprintf(port, sizeof(port), "%d", pn);

	struct addrinfo hints = {0}, *res, *ai;
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	int gai = getaddrinfo(*host ? host : NULL, port, &hints, &res);
	if (gai != 0) {
		snprintf(err, errsize, "%s: %s", spec, gai_strerror(gai));
		return -1;
	}
	int opened = 0;
	for (ai = res; ai; ai = ai->ai_next) {
		int fd = socket(ai->ai_family,
				ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
				0);
		if (fd < 0)
			continue;
		int one = 1;
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (ai->ai_family == AF_INET6)
			setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one,
				   sizeof(one));
		if (bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 ||
		    listen(fd, LISTEN_BACKLOG) != 0) {
			snprintf(err, errsize, "%s: %s", spec,
				 strerror(errno));
			close(fd);
			freeaddrinfo(res);
			return -1;
		}
		if (add_socket(out, fd, spec, NULL, err, errsize) != 0) {
			freeaddrinfo(res);
			return -1;
		}
		opened++;
	}
	freeaddrinfo(res);
	if (opened == 0) {
		snprintf(err, errsize, "%s: no usable address", spec);
		return -1;
	}
	return 0;
}

/* Does a process accept on this socket file? Unlinking it would silently
 * cut that process (e.g. a second instance started by mistake) off from
 * Postfix. Only "connection refused" proves the file stale. */
static bool unix_socket_alive(const struct sockaddr_un *sun)
{
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return false;
	int rc = connect(fd, (const struct sockaddr *)sun, sizeof(*sun));
	bool alive = rc == 0 || errno == EAGAIN || errno == EINPROGRESS;
	close(fd);
	return alive;
}

static int open_unix(const char *spec, const struct listen_unix_perm *perm,
		     struct listen_set *out, char *err, size_t errsize)
{
	const char *path = spec + 5;
	struct sockaddr_un sun = {0};
	struct stat st;

	if (*path == '\0' || strlen(path) >= sizeof(sun.sun_path)) {
		snprintf(err, errsize, "%s: bad socket path", spec);
		return -1;
	}
	sun.sun_family = AF_UNIX;
	memcpy(sun.sun_path, path, strlen(path) + 1);
	if (lstat(path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode)) {
			snprintf(err, errsize,
				 "%s: exists and is not a socket", spec);
			return -1;
		}
		if (unix_socket_alive(&sun)) {
			snprintf(err, errsize, "%s: in use by another process",
				 spec);
			return -1;
		}
		unlink(path); /* stale socket of an earlier run */
	}
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		snprintf(err, errsize, "%s: %s", spec, strerror(errno));
		return -1;
	}
	/* Create the file with no access, then open it up: no window in
	 * which the socket is reachable with the default umask. */
	mode_t old = umask(0777);
	int rc = bind(fd, (struct sockaddr *)&sun, sizeof(sun));
	umask(old);
	if (rc != 0 || listen(fd, LISTEN_BACKLOG) != 0) {
		snprintf(err, errsize, "%s: %s", spec, strerror(errno));
		close(fd);
		return -1;
	}
	uid_t uid = (uid_t)-1;
	gid_t gid = (gid_t)-1;
	if (perm->owner && *perm->owner) {
		struct passwd *pw = getpwnam(perm->owner);
		if (pw == NULL) {
			snprintf(err, errsize, "%s: unknown socket_owner %s",
				 spec, perm->owner);
			goto fail;
		}
		uid = pw->pw_uid;
	}
	if (perm->group && *perm->group) {
		struct group *gr = getgrnam(perm->group);
		if (gr == NULL) {
			snprintf(err, errsize, "%s: unknown socket_group %s",
				 spec, perm->group);
			goto fail;
		}
		gid = gr->gr_gid;
	}
	if ((uid != (uid_t)-1 || gid != (gid_t)-1) &&
	    chown(path, uid, gid) != 0) {
		snprintf(err, errsize, "%s: chown: %s", spec, strerror(errno));
		goto fail;
	}
	if (chmod(path, perm->mode) != 0) {
		snprintf(err, errsize, "%s: chmod: %s", spec, strerror(errno));
		goto fail;
	}
	return add_socket(out, fd, spec, path, err, errsize);
fail:
	close(fd);
	unlink(path);
	return -1;
}

int listen_open(const char *list, const struct listen_unix_perm *perm,
		struct listen_set *out, char *err, size_t errsize)
{
	char item[512];
	const char *cur = list;
	int rc;

	memset(out, 0, sizeof(*out));
	while ((rc = str_list_next(&cur, item, sizeof(item))) == 1) {
		if (strncmp(item, "inet:", 5) == 0)
			rc = open_inet(item, out, err, errsize);
		else if (strncmp(item, "unix:", 5) == 0)
			rc = open_unix(item, perm, out, err, errsize);
		else {
			snprintf(err, errsize, "%s: unknown endpoint type",
				 item);
			rc = -1;
		}
		if (rc != 0) {
			listen_close(out, 1);
			return -1;
		}
	}
	if (rc < 0 || out->n == 0) {
		snprintf(err, errsize, "listen: no usable endpoint");
		listen_close(out, 1);
		return -1;
	}
	return 0;
}

void listen_close(struct listen_set *s, int unlink_files)
{
	for (size_t i = 0; i < s->n; i++) {
		if (s->v[i].fd >= 0)
			close(s->v[i].fd);
		if (unlink_files && s->v[i].path)
			unlink(s->v[i].path);
		free(s->v[i].name);
		free(s->v[i].path);
	}
	s->n = 0;
}
