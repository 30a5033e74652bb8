/*
 * kt.h: helpers shared by the real-kernel test programs. Each program is a
 * standalone executable linked against a NetBSD rump kernel layer and one
 * of our libraries by `cargo xtask kernel-test`; it prints what it checks
 * and exits 0 on success. `RUMPUSER_FLAVOUR` (posix or green) tells it
 * which library it runs on, for the few checks that differ.
 */
#ifndef KT_H
#define KT_H

#include <sys/types.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <rump/rump.h>
#include <rump/rump_syscalls.h>
#include <rump/rumpdefs.h>

#define CHECK(cond, ...) do {						\
	if (!(cond)) {							\
		printf("FAIL %s:%d: ", __FILE__, __LINE__);		\
		printf(__VA_ARGS__);					\
		printf(" (errno %d)\n", errno);				\
		fflush(stdout);						\
		_exit(1);						\
	}								\
} while (0)

#include <errno.h>

static inline int kt_green(void) {
	const char *f = getenv("RUMPUSER_FLAVOUR");
	return f != NULL && strcmp(f, "green") == 0;
}

static inline uint64_t kt_now_ns(void) {
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* struct tmpfs_args from NetBSD sys/fs/tmpfs/tmpfs_args.h (LP64 layout). */
struct kt_tmpfs_args {
	int ta_version;
	uint64_t ta_nodes_max;
	int64_t ta_size_max;
	uint32_t ta_root_uid;
	uint32_t ta_root_gid;
	uint32_t ta_root_mode;
};

static inline void kt_mount_tmpfs(const char *dir) {
	struct kt_tmpfs_args ta;
	rump_sys_mkdir(dir, 0777);
	memset(&ta, 0, sizeof(ta));
	ta.ta_version = 1;
	ta.ta_root_mode = 0777;
	CHECK(rump_sys_mount("tmpfs", dir, 0, &ta, sizeof(ta)) == 0, "mount tmpfs on %s", dir);
}

#endif
