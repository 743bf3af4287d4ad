/*
 * header - the trace header fields that record an SPF result:
 * Received-SPF (RFC 7208 section 9.1, with verified erratum 5436) and
 * Authentication-Results (RFC 8601, as RFC 7208 section 9.2 describes).
 *
 * Pure formatting into a caller buffer. Everything that came from the SMTP
 * client or from DNS (sender, HELO name, mechanism text, problem text) is
 * untrusted: control and non-ASCII bytes become '?', values that are not a
 * dot-atom are written as RFC 5322 quoted-strings with '"' and '\' escaped,
 * comment text escapes '(' ')' '\', and every value is cut to
 * SPF_HEADER_VALUE_MAX bytes. So no CR, LF or other control byte can reach
 * the output (no header injection), and the field stays below the 998-byte
 * line limit of RFC 5322 section 2.1.1 without folding.
 */
#ifndef GREYSPF_SPF_HEADER_H
#define GREYSPF_SPF_HEADER_H

#include <stddef.h>

#include "spf/spf.h"
#include "util/addr.h"

/* Header field names (defined once). */
#define SPF_HEADER_RECEIVED "Received-SPF"
#define SPF_HEADER_AUTH_RESULTS "Authentication-Results"
/* Longest piece of any one untrusted value we copy; our choice, so that a
 * field with every value at this bound stays under 998 bytes (RFC 5322
 * section 2.1.1), which the unit tests check. */
#define SPF_HEADER_VALUE_MAX 96
/* A buffer this large always holds either field. */
#define SPF_HEADER_MAX 1000

struct spf_header_info {
	enum spf_result result;
	enum spf_identity identity;
	const struct addr *ip;
	const char *sender;    /* MAIL FROM as given; "" for the null sender */
	const char *helo;      /* HELO/EHLO name */
	const char *receiver;  /* our host name (the verifier) */
	const char *mechanism; /* the matching term or "default"; may be NULL */
	const char *problem;   /* error detail; may be NULL */
};

/*
 * Writes the complete field "Received-SPF: <result> (<comment>) key=value;
 * ..." without a line ending into buf. Keys: client-ip, envelope-from
 * (always quoted), helo, receiver, identity, then mechanism (quoted) when
 * set and problem (quoted) for temperror/permerror. Returns the length, or
 * -1 if it does not fit in size bytes (buf is then "").
 */
int spf_header_received(const struct spf_header_info *h, char *buf,
			size_t size);

/*
 * Writes "Authentication-Results: <authserv_id>; spf=<result> (<comment>)
 * smtp.mailfrom=<sender domain>" (or smtp.helo=<helo> for the HELO
 * identity) into buf. Returns the length or -1 as above.
 */
int spf_header_auth_results(const char *authserv_id,
			    const struct spf_header_info *h, char *buf,
			    size_t size);

#endif
