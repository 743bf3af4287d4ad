/*
 * endpoint - "inet:HOST:PORT" (HOST may be [v6]) or "unix:/path" to a
 * socket address, for the benchmark programs (loadgen, dunno_server).
 *
 * Header-only on purpose: the benchmark programs link nothing of greyspf,
 * so the harness shares no code (and no bugs) with what it measures, yet
 * they need not repeat each other. Loopback addresses only: load goes to
 * this machine and nowhere else.
 */
#ifndef GREYSPF_BENCH_ENDPOINT_H
#define GREYSPF_BENCH_ENDPOINT_H

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>

static inline bool endpoint_is_loopback(const struct sockaddr *sa)
{
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *s4 = (const struct sockaddr_in *)sa;
		return (ntohl(s4->sin_addr.s_addr) >> 24) == 127;
	}
	if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;
		return IN6_IS_ADDR_LOOPBACK(&s6->sin6_addr);
	}
	return false;
}

/*
 * Fills *out (*outlen) for target; passive for bind(). Returns 0, or -1
 * with a reason in err. A unix path is not touched.
 */
static inline int endpoint_parse(const char *target, bool passive,
				 struct sockaddr_storage *out,
				 socklen_t *outlen, char *err, size_t errsize)
{
	memset(out, 0, sizeof(*out));
	if (strncmp(target, "unix:", 5) == 0) {
		struct sockaddr_un *sun = (struct sockaddr_un *)out;
		const char *path = target + 5;
		size_t n = strlen(path);
		if (n == 0 || n >= sizeof(sun->sun_path)) {
			snprintf(err, errsize, "unix socket path empty or too "
					       "long");
			return -1;
		}
		sun->sun_family = AF_UNIX;
		memcpy(sun->sun_path, path, n + 1);
		*outlen = (socklen_t)sizeof(*sun);
		return 0;
	}
	if (strncmp(target, "inet:", 5) != 0) {
		snprintf(err, errsize, "target must be inet:HOST:PORT or "
				       "unix:/path");
		return -1;
	}
	char host[256];
	const char *hp = target + 5, *colon = strrchr(hp, ':');
	if (colon == NULL || colon == hp || colon[1] == '\0') {
		snprintf(err, errsize, "target must be inet:HOST:PORT or "
				       "unix:/path");
		return -1;
	}
	size_t hl = (size_t)(colon - hp);
	if (hp[0] == '[' && hl >= 2 && hp[hl - 1] == ']') {
		hp++;
		hl -= 2;
	}
	if (hl >= sizeof(host)) {
		snprintf(err, errsize, "host name too long");
		return -1;
	}
	memcpy(host, hp, hl);
	host[hl] = '\0';
	struct addrinfo hints = {0}, *res;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICSERV | (passive ? AI_PASSIVE : 0);
	int rc = getaddrinfo(host, colon + 1, &hints, &res);
	if (rc != 0) {
		snprintf(err, errsize, "%s: %s", target, gai_strerror(rc));
		return -1;
	}
	if (!endpoint_is_loopback(res->ai_addr)) {
		freeaddrinfo(res);
		snprintf(err, errsize, "only loopback addresses (127.0.0.0/8, "
				       "::1) are allowed");
		return -1;
	}
	memcpy(out, res->ai_addr, res->ai_addrlen);
	*outlen = res->ai_addrlen;
	freeaddrinfo(res);
	return 0;
}

#endif
