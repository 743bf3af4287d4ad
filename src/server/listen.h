/*
 * listen - listening sockets from `listen` endpoints.
 *
 *   inet:HOST:PORT    HOST is an IPv4 address, [IPv6] or a name; one socket
 *                     per address the name resolves to
 *   unix:PATH         a stream socket; a stale socket file is replaced, any
 *                     other file is an error; mode/owner/group applied
 *
 * Sockets are non-blocking and close-on-exec. Nothing here logs.
 */
#ifndef GREYSPF_SERVER_LISTEN_H
#define GREYSPF_SERVER_LISTEN_H

#include <stddef.h>
#include <sys/types.h>

/* Most sockets one `listen` list may open. */
#define LISTEN_MAX 32
/* listen(2) backlog: Postfix opens policy connections in bursts when many
 * smtpd processes start at once. */
#define LISTEN_BACKLOG 1024

struct listen_socket {
	int fd;
	char *name; /* the endpoint as written, plus the address for inet */
	char *path; /* unix sockets: the file to unlink at exit, else NULL */
};

struct listen_set {
	struct listen_socket v[LISTEN_MAX];
	size_t n;
};

struct listen_unix_perm {
	mode_t mode;
	const char *owner; /* user name, or "" to keep */
	const char *group; /* group name, or "" to keep */
};

/*
 * Splits "inet:HOST:PORT" or "inet:[ADDR]:PORT" into host (may be empty:
 * every address) and port. Returns 0, or -1 with a reason naming spec.
 */
int listen_parse_inet(const char *spec, char *host, size_t hostsize,
		      int *port, char *err, size_t errsize);

/*
 * Opens every endpoint of the comma-separated list. On error closes what it
 * opened and returns -1 with a reason naming the endpoint.
 */
int listen_open(const char *list, const struct listen_unix_perm *perm,
		struct listen_set *out, char *err, size_t errsize);

/* Closes all sockets; unlinks unix socket files if unlink_files. */
void listen_close(struct listen_set *s, int unlink_files);

#endif
