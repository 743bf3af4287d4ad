/*
 * normalise - the sender and recipient forms that greylisting keys use.
 *
 * A greylist triplet must stay the same across the retries of one message
 * and across the messages of one legitimate sender, or every retry starts
 * over. Senders therefore lose what changes per message, the way postgrey
 * (1.37, do_sender_substitutions) folds them:
 *   - ASCII lower case (the whole address);
 *   - SRS0/SRS1 forwarding addresses become the original sender
 *     (SRS0=HHH=TT=domain=local@fwd -> local@domain), so a new SRS hash or
 *     timestamp on a retry does not make a new key;
 *   - BATV: prvs=TAGVAL=local@ (the draft's order), prvs=local=TAGVAL@ and
 *     local=prvs=TAGVAL@ (seen in the wild) become local@;
 *   - an extension after a delimiter ("+" by default) is removed from the
 *     local part (user+list-123@ -> user@);
 *   - every standalone number in the local part becomes "#" (VERP:
 *     bounce-123-456@x -> bounce-#-#@x); "standalone" is Perl's \b\d+\b,
 *     i.e. a digit run with no letter, digit or "_" on either side.
 * A null sender "" stays "". An address without "@", with an empty local
 * part or with a quoted local part is only lower-cased: there is nothing
 * we could safely fold. Bytes >= 0x80 are kept as they are.
 *
 * Recipients are only lower-cased and lose their extension.
 *
 * All functions are pure. They return the length written to out (always
 * NUL-terminated), or -1 if the result does not fit in outsize or the input
 * holds a NUL byte (a NUL would be ambiguous inside a grey_key).
 */
#ifndef GREYSPF_GREY_NORMALISE_H
#define GREYSPF_GREY_NORMALISE_H

#include <stddef.h>
#include <sys/types.h>

/* Longest address we expect: RFC 5321 section 4.5.3.1.1/4.5.3.1.2, 64-octet
 * local part + "@" + 255-octet domain. Callers size buffers with it; longer
 * input is still accepted if the caller's buffer holds it. */
#define GREY_ADDR_MAX 320

/* Default extension delimiters: Postfix's recipient_delimiter default in
 * most distributions and postgrey's hard-wired "+". */
#define GREY_DELIMITERS_DEFAULT "+"

/* Sender with the default delimiters. */
ssize_t grey_norm_sender(const char *in, size_t len, char *out, size_t outsize);
/* Sender with a delimiter set (each byte of delimiters is a delimiter;
 * NULL means GREY_DELIMITERS_DEFAULT, "" means no extension stripping). */
ssize_t grey_norm_sender_d(const char *in, size_t len, const char *delimiters,
			   char *out, size_t outsize);
/* Recipient: lower case, extension removed (delimiters as above). */
ssize_t grey_norm_recipient(const char *in, size_t len, const char *delimiters,
			    char *out, size_t outsize);

#endif
