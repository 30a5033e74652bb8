/* LIBS: -lrumpdev_disk -lrumpdev -lrumpvfs -lrump */
/*
 * A disk image cut short on the host while a kernel reads it as a raw
 * device (someone else truncates it): reads of the part that is gone come
 * back short or fail, they do not kill the process (a hypervisor that
 * reads through a mapping of the image takes SIGBUS there) and do not
 * return the old bytes; reads of what is left still return the right data.
 */
#include "kt.h"

#include <fcntl.h>

#define MIB (1024 * 1024)
#define BLOCK 4096

static char pattern(long off) { return (char)((off / BLOCK) * 7 + 1); }

static void check_block(int fd, long off, const char *when) {
	static char buf[BLOCK];
	ssize_t n = rump_sys_pread(fd, buf, BLOCK, off);
	CHECK(n == BLOCK, "read at %ld %s: %zd", off, when, n);
	for (int i = 0; i < BLOCK; i++)
		CHECK(buf[i] == pattern(off), "byte %d of the block at %ld %s", i, off, when);
}

int main(void) {
	const char *img = "trunc.img";
	static char blk[BLOCK];
	int hfd = open(img, O_CREAT | O_TRUNC | O_WRONLY, 0644);
	CHECK(hfd >= 0, "create the image");
	for (long off = 0; off < 4 * MIB; off += BLOCK) {
		memset(blk, pattern(off), BLOCK);
		CHECK(write(hfd, blk, BLOCK) == BLOCK, "write the image");
	}
	close(hfd);

	CHECK(rump_init() == 0, "rump_init");
	CHECK(rump_pub_etfs_register("/dev/img", img, RUMP_ETFS_CHR) == 0, "etfs_register");
	int fd = rump_sys_open("/dev/img", RUMP_O_RDONLY);
	CHECK(fd >= 0, "open /dev/img");
	/* Both halves read once, so whatever the hypervisor keeps is warm. */
	for (long off = 0; off < 4 * MIB; off += 256 * 1024)
		check_block(fd, off, "before the cut");

	CHECK(truncate(img, 1 * MIB) == 0, "truncate the image on the host");
	static char buf[BLOCK];
	for (long off = 2 * MIB; off < 4 * MIB; off += 512 * 1024) {
		memset(buf, 0x55, BLOCK);
		ssize_t n = rump_sys_pread(fd, buf, BLOCK, off);
		CHECK(n < BLOCK, "a read past the cut at %ld returned a whole block", off);
		for (ssize_t i = 0; i < n; i++)
			CHECK(buf[i] != pattern(off) || pattern(off) == 0,
			    "a read past the cut at %ld returned the old bytes", off);
		printf("disk_truncated: read past the cut at %ld: %zd (errno %d)\n", off, n,
		    n < 0 ? errno : 0);
	}
	for (long off = 0; off < 1 * MIB; off += 128 * 1024)
		check_block(fd, off, "after the cut");
	rump_sys_close(fd);
	unlink(img);
	printf("disk_truncated: the process survived reads past a host-side cut, "
	    "and the rest reads back right\n");
	return 0;
}
