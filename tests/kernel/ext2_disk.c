/* LIBS: -lrumpfs_ext2fs -lrumpfs_ffs -lrumpdev_disk -lrumpdev -lrumpvfs -lrump */
/*
 * A file system on a disk image through rumpuser_bio: mke2fs an image on
 * the host, mount it in the rump kernel as a block device, write and sync
 * a file, unmount, remount and read it back, then check the image on the
 * host with debugfs.
 */
#include "kt.h"

struct kt_ufs_args { char *fspec; };

int main(void) {
	const char *img = "ext2.img";
	static char buf[1 << 20], rbuf[1 << 20];
	if (system("command -v mke2fs >/dev/null 2>&1") != 0) {
		printf("SKIP: mke2fs is not installed (apt-get install e2fsprogs)\n");
		return 0;
	}
	unlink(img);
	CHECK(system("mke2fs -q -F -t ext2 -b 1024 ext2.img 16384 >/dev/null 2>&1") == 0, "mke2fs");
	CHECK(rump_init() == 0, "rump_init");
	CHECK(rump_pub_etfs_register("/dev/xd0", img, RUMP_ETFS_BLK) == 0, "etfs_register");
	rump_sys_mkdir("/mnt", 0777);
	struct kt_ufs_args args = { .fspec = "/dev/xd0" };
	for (size_t i = 0; i < sizeof(buf); i++) buf[i] = (char)(i * 31 + 7);
	CHECK(rump_sys_mount("ext2fs", "/mnt", 0, &args, sizeof(args)) == 0, "mount ext2fs");
	int fd = rump_sys_open("/mnt/data", RUMP_O_RDWR | RUMP_O_CREAT, 0644);
	CHECK(fd >= 0, "create");
	CHECK(rump_sys_write(fd, buf, sizeof(buf)) == (ssize_t)sizeof(buf), "write 1 MiB");
	CHECK(rump_sys_fsync(fd) == 0, "fsync");
	rump_sys_close(fd);
	fd = rump_sys_open("/mnt/hello", RUMP_O_RDWR | RUMP_O_CREAT, 0644);
	CHECK(fd >= 0 && rump_sys_write(fd, "hello ext2\n", 11) == 11, "write hello");
	rump_sys_close(fd);
	CHECK(rump_sys_unmount("/mnt", 0) == 0, "unmount");
	CHECK(rump_sys_mount("ext2fs", "/mnt", 0, &args, sizeof(args)) == 0, "remount");
	fd = rump_sys_open("/mnt/data", RUMP_O_RDONLY);
	CHECK(fd >= 0, "reopen");
	size_t got = 0;
	while (got < sizeof(rbuf)) {
		ssize_t n = rump_sys_read(fd, rbuf + got, sizeof(rbuf) - got);
		CHECK(n > 0, "read at %zu", got);
		got += (size_t)n;
	}
	CHECK(memcmp(buf, rbuf, sizeof(buf)) == 0, "1 MiB read back after remount");
	rump_sys_close(fd);
	CHECK(rump_sys_unmount("/mnt", 0) == 0, "final unmount");
	printf("ext2: 1 MiB written, synced, remounted and verified through rumpuser_bio\n");
	if (system("command -v debugfs >/dev/null 2>&1") == 0) {
		CHECK(system("debugfs -R 'cat /hello' ext2.img 2>/dev/null | grep -q 'hello ext2'") == 0,
		    "host debugfs cannot read /hello from the image");
		printf("ext2: host debugfs reads /hello from the image\n");
	}
	return 0;
}
