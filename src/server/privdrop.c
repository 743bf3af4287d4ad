/*
 * privdrop - giving up root; see privdrop.h.
 */
#include "server/privdrop.h"

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int privdrop_lookup(const char *user, const char *group, uid_t *uid,
		    gid_t *gid, char *err, size_t errsize)
{
	struct passwd *pw = getpwnam(user);
	if (pw == NULL) {
		snprintf(err, errsize, "unknown user \"%s\"", user);
		return -1;
	}
	*uid = pw->pw_uid;
	*gid = pw->pw_gid;
	if (group && *group) {
		struct group *gr = getgrnam(group);
		if (gr == NULL) {
			snprintf(err, errsize, "unknown group \"%s\"", group);
			return -1;
		}
		*gid = gr->gr_gid;
	}
	if (*uid == 0) {
		snprintf(err, errsize, "user \"%s\" is root", user);
		return -1;
	}
	return 0;
}

int privdrop_to(uid_t uid, gid_t gid, char *err, size_t errsize)
{
	if (setgroups(1, &gid) != 0) {
		snprintf(err, errsize, "setgroups: %s", strerror(errno));
		return -1;
	}
	if (setresgid(gid, gid, gid) != 0) {
		snprintf(err, errsize, "setresgid: %s", strerror(errno));
		return -1;
	}
	if (setresuid(uid, uid, uid) != 0) {
		snprintf(err, errsize, "setresuid: %s", strerror(errno));
		return -1;
	}
	/* Paranoia as in OpenBSD daemons: root must be gone for good. */
	if (uid != 0 && (setuid(0) == 0 || seteuid(0) == 0)) {
		snprintf(err, errsize, "could regain root after dropping it");
		return -1;
	}
	uid_t r, e, sv;
	gid_t gr, ge, gs;
	if (getresuid(&r, &e, &sv) != 0 || r != uid || e != uid ||
	    sv != uid || getresgid(&gr, &ge, &gs) != 0 || gr != gid ||
	    ge != gid || gs != gid) {
		snprintf(err, errsize, "ids did not change as asked");
		return -1;
	}
	return 0;
}
