// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include "agent/privs.h"

#include <errno.h>
#include <grp.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/fsuid.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <linux/capability.h>

/* The kernel answers EINVAL past its last capability: no need to read
 * /proc/sys/kernel/cap_last_cap, and caps newer than our headers count too. */
#define PRIVS_CAP_PROBE_MAX 64

static int fail(char *err, size_t errlen, int e, const char *what, const char *grant)
{
	snprintf(err, errlen, "%s: %s%s%s", what, strerror(e), grant ? "; grant " : "",
		 grant ? grant : "");
	return -e;
}

/* Drops every capability still in the bounding set. Dropping needs
 * CAP_SETPCAP even for a cap that is already gone, so only those still set
 * are dropped: an agent started with an empty bounding set needs nothing. */
static int clear_bounding(char *err, size_t errlen)
{
	char what[96];

	for (int cap = 0; cap < PRIVS_CAP_PROBE_MAX; cap++) {
		int r = prctl(PR_CAPBSET_READ, cap, 0, 0, 0);

		if (r < 0 && errno == EINVAL)
			return 0;
		if (r < 0)
			return fail(err, errlen, errno, "cannot read the capability bounding set",
				    NULL);
		if (r == 0)
			continue;
		if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0)) {
			snprintf(what, sizeof(what),
				 "cannot drop capability %d from the bounding set", cap);
			return fail(err, errlen, errno, what,
				    "CAP_SETPCAP (dropped with the rest after attach)");
		}
	}
	return 0;
}

static int clear_groups(char *err, size_t errlen)
{
	int e;

	if (setgroups(0, NULL) == 0)
		return 0;
	/* Without CAP_SETGID this only fails if there is something to drop. */
	e = errno;
	if (e == EPERM && getgroups(0, NULL) == 0)
		return 0;
	return fail(err, errlen, e, "cannot drop the supplementary groups",
		    "CAP_SETGID (dropped with the rest after attach)");
}

/* Every id and set read back: a kernel or libc that silently kept something
 * must stop the agent, not leave it running privileged. */
static int verify(uid_t uid, gid_t gid, char *err, size_t errlen)
{
	struct __user_cap_header_struct hdr = { .version = _LINUX_CAPABILITY_VERSION_3 };
	struct __user_cap_data_struct data[2] = {};
	uid_t ru, eu, su;
	gid_t rg, eg, sg;

	if (getresuid(&ru, &eu, &su) || getresgid(&rg, &eg, &sg) ||
	    syscall(SYS_capget, &hdr, data))
		return fail(err, errlen, errno, "cannot read back the credentials", NULL);
	if (ru != uid || eu != uid || su != uid || rg != gid || eg != gid || sg != gid ||
	    (uid_t)setfsuid((uid_t)-1) != uid || (gid_t)setfsgid((gid_t)-1) != gid) {
		snprintf(err, errlen, "user switch incomplete: uids %u/%u/%u gids %u/%u/%u, "
			 "wanted %u:%u", ru, eu, su, rg, eg, sg, uid, gid);
		return -EPERM;
	}
	if (getgroups(0, NULL) != 0) {
		snprintf(err, errlen, "supplementary groups still set after dropping them");
		return -EPERM;
	}
	for (int i = 0; i < 2; i++) {
		if (data[i].effective || data[i].permitted || data[i].inheritable) {
			snprintf(err, errlen, "capabilities still held after dropping them");
			return -EPERM;
		}
	}
	for (int cap = 0; cap < PRIVS_CAP_PROBE_MAX; cap++) {
		int b = prctl(PR_CAPBSET_READ, cap, 0, 0, 0);
		int a = prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_IS_SET, cap, 0, 0);

		if (b < 0)
			break;
		if (b > 0 || a > 0) {
			snprintf(err, errlen, "capability %d still in the %s set", cap,
				 b > 0 ? "bounding" : "ambient");
			return -EPERM;
		}
	}
	if (prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) != 1 || prctl(PR_GET_DUMPABLE, 0, 0, 0, 0) != 0) {
		snprintf(err, errlen, "no_new_privs or non-dumpable did not stick");
		return -EPERM;
	}
	return 0;
}

int privs_drop_to(uid_t uid, gid_t gid, char *err, size_t errlen)
{
	struct __user_cap_header_struct hdr = { .version = _LINUX_CAPABILITY_VERSION_3 };
	struct __user_cap_data_struct data[2] = {};
	char what[128];
	int ret;

	/* Ambient first: clearing it needs no capability, and it must not
	 * survive in a later exec of anything. */
	if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) && errno != EINVAL)
		return fail(err, errlen, errno, "cannot clear the ambient capabilities", NULL);
	/* The bounding set while CAP_SETPCAP is still effective, i.e. before
	 * the uid changes. */
	if ((ret = clear_bounding(err, errlen)) || (ret = clear_groups(err, errlen)))
		return ret;
	/* Keep-caps off: the uid change below then empties the permitted and
	 * effective sets by itself. */
	if (prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0))
		return fail(err, errlen, errno, "cannot turn keep-caps off", NULL);
	/* gid before uid: changing the gid needs CAP_SETGID, gone with the uid. */
	if (setresgid(gid, gid, gid)) {
		snprintf(what, sizeof(what), "--run-as %u:%u: cannot switch to gid %u", uid, gid,
			 gid);
		return fail(err, errlen, errno, what,
			    "CAP_SETGID (dropped with the rest after attach)");
	}
	if (setresuid(uid, uid, uid)) {
		snprintf(what, sizeof(what), "--run-as %u:%u: cannot switch to uid %u", uid, gid,
			 uid);
		return fail(err, errlen, errno, what,
			    "CAP_SETUID (dropped with the rest after attach)");
	}
	/* Inheritable survives a uid change, and uid 0 (--run-as 0:...) keeps
	 * everything: clear all three sets explicitly. */
	if (syscall(SYS_capset, &hdr, data))
		return fail(err, errlen, errno, "cannot drop capabilities", NULL);
	/* A uid change already makes the process non-dumpable unless
	 * fs.suid_dumpable says otherwise; say it explicitly. Processes of the
	 * same uid (another workload that happens to use it) then cannot ptrace
	 * the agent or read its memory. */
	if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0))
		return fail(err, errlen, errno, "cannot mark the process not dumpable", NULL);
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0))
		return fail(err, errlen, errno, "cannot set no_new_privs", NULL);
	return verify(uid, gid, err, errlen);
}
