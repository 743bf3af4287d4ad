/*
 * addr - IPv4/IPv6 addresses and CIDR networks.
 *
 * Addresses are kept in network byte order in a 16-byte array; an IPv4
 * address uses the first 4 bytes. Parsing never reads past the given string
 * and rejects anything inet_pton(3) rejects. All functions are pure.
 */
#ifndef GREYSPF_UTIL_ADDR_H
#define GREYSPF_UTIL_ADDR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Longest text form of an address (INET6_ADDRSTRLEN) and of a network
 * ("address/128"). */
#define ADDR_STRLEN 46
#define CIDR_STRLEN (ADDR_STRLEN + 4)

struct addr {
	int family; /* AF_INET or AF_INET6 */
	uint8_t b[16];
};

struct cidr {
	struct addr net; /* already masked to prefix */
	int prefix;      /* 0..32 or 0..128 */
};

/*
 * Parses a literal IPv4 or IPv6 address (no brackets, no zone, no prefix).
 * An IPv4-mapped IPv6 address (::ffff:a.b.c.d) is returned as IPv4, since
 * Postfix, SPF (RFC 7208 section 5) and greylisting all treat it as such.
 * Returns 0, or -1 if s is not an address.
 */
int addr_parse(const char *s, struct addr *out);
/* As addr_parse() on the first len bytes of s. */
int addr_parsen(const char *s, size_t len, struct addr *out);

/* Formats a into buf (ADDR_STRLEN bytes at least); returns buf. */
char *addr_format(const struct addr *a, char *buf, size_t bufsize);

/* Number of address bits: 32 or 128. */
int addr_bits(const struct addr *a);

/* Zeroes every bit after the first prefix bits (clamped to the family). */
void addr_mask(struct addr *a, int prefix);

/* True if a and b are the same family and equal in their first prefix bits. */
bool addr_match_prefix(const struct addr *a, const struct addr *b, int prefix);

bool addr_equal(const struct addr *a, const struct addr *b);

/*
 * Parses "ADDR" or "ADDR/PREFIX" (a bare address is a host network). An IPv4
 * network may also be written as a postgrey-style prefix of octets: "10.1"
 * means 10.1.0.0/16 when allow_partial is true. Returns 0 or -1.
 */
int cidr_parse(const char *s, struct cidr *out, bool allow_partial);

bool cidr_match(const struct cidr *c, const struct addr *a);

/* Formats as "net/prefix" into buf (CIDR_STRLEN bytes at least). */
char *cidr_format(const struct cidr *c, char *buf, size_t bufsize);

/* A growable list of networks, matched by linear scan (lists are short;
 * whitelists of thousands of entries should use a sorted variant). */
struct cidr_list {
	struct cidr *v;
	size_t n, cap;
};

void cidr_list_add(struct cidr_list *l, const struct cidr *c);
bool cidr_list_match(const struct cidr_list *l, const struct addr *a);
void cidr_list_free(struct cidr_list *l);

#endif
