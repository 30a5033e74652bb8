/* LIBS: -lrumpfs_tmpfs -lrumpvfs -lrump */
/* tmpfs: many files written, read back, renamed, removed; fsync; unmount. */
#include "kt.h"

int main(void) {
	char name[64], name2[64], buf[4096], rbuf[4096];
	CHECK(rump_init() == 0, "rump_init");
	kt_mount_tmpfs("/t");
	for (int i = 0; i < 200; i++) {
		snprintf(name, sizeof(name), "/t/f%03d", i);
		int fd = rump_sys_open(name, RUMP_O_RDWR | RUMP_O_CREAT | RUMP_O_EXCL, 0644);
		CHECK(fd >= 0, "create %s", name);
		memset(buf, i & 0xff, sizeof(buf));
		CHECK(rump_sys_write(fd, buf, sizeof(buf)) == (ssize_t)sizeof(buf), "write %s", name);
		CHECK(rump_sys_fsync(fd) == 0, "fsync");
		CHECK(rump_sys_close(fd) == 0, "close");
	}
	for (int i = 0; i < 200; i++) {
		snprintf(name, sizeof(name), "/t/f%03d", i);
		int fd = rump_sys_open(name, RUMP_O_RDONLY);
		CHECK(fd >= 0, "open %s", name);
		CHECK(rump_sys_read(fd, rbuf, sizeof(rbuf)) == (ssize_t)sizeof(rbuf), "read %s", name);
		memset(buf, i & 0xff, sizeof(buf));
		CHECK(memcmp(buf, rbuf, sizeof(buf)) == 0, "contents of %s", name);
		rump_sys_close(fd);
		snprintf(name2, sizeof(name2), "/t/g%03d", i);
		CHECK(rump_sys_rename(name, name2) == 0, "rename");
		if (i % 2)
			CHECK(rump_sys_unlink(name2) == 0, "unlink");
	}
	CHECK(rump_sys_open("/t/f000", RUMP_O_RDONLY) == -1 && errno == 2, "renamed file still there");
	CHECK(rump_sys_unmount("/t", 0) == 0, "unmount");
	printf("tmpfs: 200 files written, verified, renamed, 100 removed\n");
	return 0;
}
