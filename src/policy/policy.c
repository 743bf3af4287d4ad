/*
 * policy - Postfix policy protocol framing, parsing and replies; see policy.h.
 *
 * Errors are returned as text; the caller logs them and disconnects.
 */
#include "policy/policy.h"
#include "util/log.h"
#include "util/xalloc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const policy_names[POLICY_NATTRS] = {
	[POLICY_REQ] = POLICY_A_REQUEST,
	[POLICY_PROTOCOL_STATE] = POLICY_A_PROTOCOL_STATE,
	[POLICY_CLIENT_ADDRESS] = POLICY_A_CLIENT_ADDRESS,
	[POLICY_CLIENT_NAME] = POLICY_A_CLIENT_NAME,
	[POLICY_REVERSE_CLIENT_NAME] = POLICY_A_REVERSE_CLIENT_NAME,
	[POLICY_HELO_NAME] = POLICY_A_HELO_NAME,
	[POLICY_SENDER] = POLICY_A_SENDER,
	[POLICY_RECIPIENT] = POLICY_A_RECIPIENT,
	[POLICY_QUEUE_ID] = POLICY_A_QUEUE_ID,
	[POLICY_INSTANCE] = POLICY_A_INSTANCE,
	[POLICY_SASL_USERNAME] = POLICY_A_SASL_USERNAME,
	[POLICY_POLICY_CONTEXT] = POLICY_A_POLICY_CONTEXT,
};

enum policy_frame_status policy_frame(const unsigned char *buf, size_t len,
				      size_t *scanned, size_t *reqlen,
				      char *err, size_t errsize)
{
	size_t pos = *scanned; /* start of the first unfinished line */

	while (pos < len) {
		size_t avail = len - pos;
		size_t look = avail < POLICY_LINE_MAX ? avail : POLICY_LINE_MAX;
		const unsigned char *nl = memchr(buf + pos, '\n', look);
		if (nl == NULL) {
			if (avail >= POLICY_LINE_MAX) {
				snprintf(err, errsize,
					 "request line longer than %d bytes",
					 POLICY_LINE_MAX);
				return POLICY_FRAME_ERROR;
			}
			break;
		}
		size_t end = (size_t)(nl - buf) + 1;
		if (nl == buf + pos) { /* the empty line */
			*reqlen = end;
			*scanned = 0;
			return POLICY_FRAME_COMPLETE;
		}
		pos = end;
		if (pos >= POLICY_REQUEST_MAX) {
			snprintf(err, errsize, "request larger than %d bytes",
				 POLICY_REQUEST_MAX);
			return POLICY_FRAME_ERROR;
		}
	}
	*scanned = pos;
	if (len >= POLICY_REQUEST_MAX) {
		snprintf(err, errsize, "request larger than %d bytes",
			 POLICY_REQUEST_MAX);
		return POLICY_FRAME_ERROR;
	}
	return POLICY_FRAME_MORE;
}

static int policy_lookup(const char *name, size_t len)
{
	/* A linear scan over a dozen names beats hashing at this size. */
	for (int i = 0; i < POLICY_NATTRS; i++) {
		const char *n = policy_names[i];
		if (n[0] == name[0] && strlen(n) == len &&
		    memcmp(n, name, len) == 0)
			return i;
	}
	return -1;
}

int policy_parse(const unsigned char *buf, size_t len,
		 struct policy_request *req, char *err, size_t errsize)
{
	char esc[LOG_UNTRUSTED_MAX];

	memset(req, 0, sizeof(*req));
	if (len == 0 || buf[len - 1] != '\n') {
		snprintf(err, errsize, "request not terminated");
		return -1;
	}
	if (memchr(buf, '\0', len) != NULL) {
		snprintf(err, errsize, "NUL byte in request");
		return -1;
	}
	req->mem = xmalloc(len);
	memcpy(req->mem, buf, len);
	for (int i = 0; i < POLICY_NATTRS; i++)
		req->v[i] = "";

	char *p = req->mem;
	char *end = req->mem + len;
	while (p < end) {
		char *nl = memchr(p, '\n', (size_t)(end - p));
		/* Framing guarantees a final LF; the last line is empty. */
		if (nl == p)
			break;
		*nl = '\0';
		if (++req->nlines > POLICY_ATTRS_MAX) {
			snprintf(err, errsize, "more than %d attributes",
				 POLICY_ATTRS_MAX);
			goto fail;
		}
		char *eq = memchr(p, '=', (size_t)(nl - p));
		if (eq == NULL || eq == p) {
			snprintf(err, errsize, "%s in request: \"%s\"",
				 eq ? "empty attribute name"
				    : "line without '='",
				 log_escape(esc, 80, p, (size_t)(nl - p)));
			goto fail;
		}
		int a = policy_lookup(p, (size_t)(eq - p));
		if (a >= 0) { /* duplicates: the last one wins (README) */
			req->v[a] = eq + 1;
			req->len[a] = (size_t)(nl - eq - 1);
		}
		p = nl + 1;
	}
	if (req->len[POLICY_REQ] == 0) {
		snprintf(err, errsize, "no \"request\" attribute");
		goto fail;
	}
	if (strcmp(req->v[POLICY_REQ], POLICY_REQUEST_TYPE) != 0) {
		snprintf(err, errsize, "unknown request type \"%s\"",
			 log_escape(esc, 80, req->v[POLICY_REQ],
				    req->len[POLICY_REQ]));
		goto fail;
	}
	return 0;
fail:
	policy_request_free(req);
	return -1;
}

void policy_request_free(struct policy_request *req)
{
	free(req->mem);
	req->mem = NULL;
}

int policy_format_reply(char *buf, size_t bufsize, const char *action)
{
	static const char head[] = "action=";
	size_t n = strlen(action);

	if (n == 0) {
		action = POLICY_DUNNO;
		n = sizeof(POLICY_DUNNO) - 1;
	}
	if (n > POLICY_ACTION_MAX)
		n = POLICY_ACTION_MAX;
	if (bufsize < sizeof(head) - 1 + n + 3)
		return -1;
	memcpy(buf, head, sizeof(head) - 1);
	char *o = buf + sizeof(head) - 1;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)action[i];
		*o++ = (c >= 0x20 && c <= 0x7e) ? (char)c : '?';
	}
	/* A trailing space would be harmless, but keep the value tidy. */
	*o++ = '\n';
	*o++ = '\n';
	*o = '\0';
	return (int)(o - buf);
}
