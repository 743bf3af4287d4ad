/*
 * policy - the Postfix policy delegation protocol (SMTPD_POLICY_README).
 *
 * A request is a series of "name=value\n" lines ended by an empty line; the
 * reply is "action=VALUE\n\n". This module frames requests in a byte stream,
 * parses one request into the attributes greyspf uses, and formats replies.
 * It performs no I/O and does not log: errors come back as text for the
 * caller to log (escaped) before it closes the connection without a reply,
 * as the protocol prescribes for trouble.
 *
 * Postfix enforces no length limit on this channel (attr_scan_plain.c), so we
 * impose our own, below.
 */
#ifndef GREYSPF_POLICY_POLICY_H
#define GREYSPF_POLICY_POLICY_H

#include <stddef.h>

/* Longest request line with its LF: 2 x Postfix's line_length_limit (2048). */
#define POLICY_LINE_MAX 4096
/* Most attribute lines in one request: Postfix 3.7 sends 29, newer ones a
 * few more; the excess is room for future versions. */
#define POLICY_ATTRS_MAX 64
/* Largest request including its empty line. */
#define POLICY_REQUEST_MAX 32768
/* Longest action value we send: a PREPEND of a header field up to RFC
 * 5322's 998-octet line limit fits; reply texts are bounded tighter by
 * their makers (Postfix cuts SMTP reply text at 510). */
#define POLICY_ACTION_MAX 1024

/* Attribute names: defined here once. */
#define POLICY_A_REQUEST "request"
#define POLICY_A_PROTOCOL_STATE "protocol_state"
#define POLICY_A_CLIENT_ADDRESS "client_address"
#define POLICY_A_CLIENT_NAME "client_name"
#define POLICY_A_REVERSE_CLIENT_NAME "reverse_client_name"
#define POLICY_A_HELO_NAME "helo_name"
#define POLICY_A_SENDER "sender"
#define POLICY_A_RECIPIENT "recipient"
#define POLICY_A_QUEUE_ID "queue_id"
#define POLICY_A_INSTANCE "instance"
#define POLICY_A_SASL_USERNAME "sasl_username"
#define POLICY_A_POLICY_CONTEXT "policy_context"
#define POLICY_REQUEST_TYPE "smtpd_access_policy"

/* Action words (first word of the reply value). */
#define POLICY_DUNNO "DUNNO"
#define POLICY_DEFER_IF_PERMIT "DEFER_IF_PERMIT"
#define POLICY_DEFER "DEFER"
#define POLICY_REJECT "REJECT"
#define POLICY_PREPEND "PREPEND"

enum policy_attr {
	POLICY_REQ,
	POLICY_PROTOCOL_STATE,
	POLICY_CLIENT_ADDRESS,
	POLICY_CLIENT_NAME,
	POLICY_REVERSE_CLIENT_NAME,
	POLICY_HELO_NAME,
	POLICY_SENDER,
	POLICY_RECIPIENT,
	POLICY_QUEUE_ID,
	POLICY_INSTANCE,
	POLICY_SASL_USERNAME,
	POLICY_POLICY_CONTEXT,
	POLICY_NATTRS
};

/*
 * One parsed request. Values are NUL-terminated copies inside mem (owned by
 * the request: policy_request_free()); an attribute Postfix did not send is
 * "" (its length 0). Values are untrusted bytes (8-bit, SMTPUTF8 possible)
 * without NUL or LF.
 */
struct policy_request {
	char *mem;
	const char *v[POLICY_NATTRS];
	size_t len[POLICY_NATTRS];
	unsigned nlines; /* attribute lines seen, known or not */
};

enum policy_frame_status {
	POLICY_FRAME_MORE,     /* no complete request yet */
	POLICY_FRAME_COMPLETE, /* *reqlen bytes form one request */
	POLICY_FRAME_ERROR,    /* a limit was broken: close the connection */
};

/*
 * Looks for the end of the first request in buf[0..len). *scanned carries
 * the scan position between calls for the same pending request (start at 0,
 * reset to 0 after each complete request), so bytes are examined once.
 * On COMPLETE sets *reqlen (including the empty line); on ERROR writes a
 * reason to err.
 */
enum policy_frame_status policy_frame(const unsigned char *buf, size_t len,
				      size_t *scanned, size_t *reqlen,
				      char *err, size_t errsize);

/*
 * Parses one framed request (as returned by policy_frame()). Returns 0, or -1
 * with a reason in err (a line without '=', an empty name, a NUL byte, too
 * many lines, a missing or unknown `request` type). On success req owns a
 * copy of what it needs; the input may be discarded.
 */
int policy_parse(const unsigned char *buf, size_t len,
		 struct policy_request *req, char *err, size_t errsize);

void policy_request_free(struct policy_request *req);

/*
 * Writes "action=VALUE\n\n" to buf. The value is made safe for Postfix: bytes
 * outside printable ASCII (CR, LF, NUL, 8-bit) become '?', it is cut to
 * POLICY_ACTION_MAX, and an empty value becomes DUNNO (an empty action means
 * OK to Postfix). Returns the length written, or -1 if bufsize is too small
 * (at least POLICY_ACTION_MAX + 10 always suffices).
 */
int policy_format_reply(char *buf, size_t bufsize, const char *action);

/* Size that always holds a formatted reply. */
#define POLICY_REPLY_MAX (POLICY_ACTION_MAX + 16)

#endif
