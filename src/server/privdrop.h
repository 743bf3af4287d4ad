/*
 * privdrop - giving up root, in one place.
 *
 * The daemon starts as root, binds its sockets, opens the store, then calls
 * privdrop_to(): setgroups, setresgid, setresuid, and a check that root
 * cannot be regained. Nothing here logs.
 */
#ifndef GREYSPF_SERVER_PRIVDROP_H
#define GREYSPF_SERVER_PRIVDROP_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* Looks up user (and group, or the user's primary group if group is empty).
 * Returns 0 or -1 with a reason. */
int privdrop_lookup(const char *user, const char *group, uid_t *uid,
		    gid_t *gid, char *err, size_t errsize);

/*
 * Switches to uid/gid with only gid as supplementary group. Returns 0, or -1
 * with a reason; after -1 the process must exit.
 */
int privdrop_to(uid_t uid, gid_t gid, char *err, size_t errsize);

#endif
