/*
 * A real-kernel file system benchmark: NetBSD's kernel layer (linked
 * dynamically, so any librumpuser.so.0 can sit under it) with ext2 on a
 * 1 GiB host image (made with mke2fs, block size 4096) registered as a
 * block device, so every file system block goes through the buffer cache,
 * the block strategy and rumpuser_bio.
 *
 * usage: kernel_fs IMAGE THREADS
 * Each of THREADS host threads forks a kernel process and writes 8 files
 * of 1 MiB into a directory of its own (64 KiB writes, fsync after each
 * file: BIO_SYNC writes), then
 * the file system is unmounted and mounted again (the kernel's caches are
 * cold, the host's page cache is not) and every thread reads its files
 * back. Prints "kernel_ext2_write_fsync_tTHREADS MIB_PER_S" and
 * "kernel_ext2_read_tTHREADS MIB_PER_S".
 *
 * Why a directory per thread: ext2 places a new directory in another block
 * group, so no group (128 MiB) fills up. NetBSD's ext2fs_alloccg checks a
 * group's free-block count, then reads its bitmap (which may sleep), and
 * panics ("map corrupted") if the bitmap has no free block left by then;
 * with 32 threads writing into one directory, group 0 fills while several
 * threads wait for its bitmap, and the kernel panics (seen on our library,
 * whose faster I/O makes more threads meet at that moment; FFS re-checks
 * after the read and has no such race).
 * Run by `cargo xtask bench-kernel`.
 */
#include <sys/types.h>

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <rump/rump.h>
#include <rump/rump_syscalls.h>
#include <rump/rumpdefs.h>

#include "kernel_bench.h"

#define FILES 8
#define FILE_BYTES (1L << 20)
#define CHUNK 65536
#define MAX_THREADS 64

struct ufs_args {
	char *fspec;
};

static int threads, reading;
static volatile int failed;



/* One thread's files: written and synced, or read back and checked. */
static int
files(int id, char *buf)
{
	char name[64];

	for (int f = 0; f < FILES; f++) {
		int fd;

		snprintf(name, sizeof(name), "/mnt/d%d/f%d", id, f);
		fd = reading ? rump_sys_open(name, RUMP_O_RDONLY)
		    : rump_sys_open(name, RUMP_O_RDWR | RUMP_O_CREAT, 0644);
		if (fd < 0)
			return -1;
		for (long off = 0; off < FILE_BYTES; off += CHUNK) {
			if (reading) {
				if (rump_sys_read(fd, buf, CHUNK) != CHUNK ||
				    buf[0] != (char)(id + f) || buf[CHUNK - 1] != (char)(id + f))
					return -1;
			} else {
				memset(buf, id + f, CHUNK);
				if (rump_sys_write(fd, buf, CHUNK) != CHUNK)
					return -1;
			}
		}
		if (!reading && rump_sys_fsync(fd) != 0)
			return -1;
		rump_sys_close(fd);
	}
	return 0;
}

static void *
worker(void *arg)
{
	int id = (int)(uintptr_t)arg;
	char *buf = malloc(CHUNK);
	char dir[32];
	int ok = buf != NULL && rump_pub_lwproc_rfork(RUMP_RFFDG) == 0;

	snprintf(dir, sizeof(dir), "/mnt/d%d", id);
	if (ok && !reading && rump_sys_mkdir(dir, 0755) != 0)
		ok = 0;

	if (!ok)
		failed = 1;
	start_line();
	if (ok && files(id, buf) != 0)
		failed = 1;
	if (ok)
		rump_pub_lwproc_releaselwp();
	free(buf);
	return NULL;
}

/* All threads through their files once; MiB/s over all of them. */
static double
phase(int read_back)
{
	uint64_t t0;

	reading = read_back;
	if (threads == 1) {
		/*
		 * In the calling thread (green threads take calls from the
		 * thread that initialised the kernel only), as its own process.
		 */
		char *buf = malloc(CHUNK);
		char dir[32] = "/mnt/d0";

		if (buf == NULL || rump_pub_lwproc_rfork(RUMP_RFFDG) != 0)
			die("rfork");
		if (!read_back && rump_sys_mkdir(dir, 0755) != 0)
			die("mkdir");
		t0 = now();
		if (files(0, buf) != 0)
			die(read_back ? "reading back" : "writing");
		t0 = now() - t0;
		rump_pub_lwproc_releaselwp();
		free(buf);
		return (double)FILES * FILE_BYTES / 1048576.0 / ((double)t0 / 1e9);
	}
	t0 = run_together(threads, worker);
	if (failed)
		die(read_back ? "reading back" : "writing");
	return (double)threads * FILES * FILE_BYTES / 1048576.0 / ((double)t0 / 1e9);
}

int
main(int argc, char **argv)
{
	struct ufs_args args = { .fspec = "/dev/xd0" };
	char cmd[4096];
	double wr, rd;

	if (argc != 3 || (threads = atoi(argv[2])) < 1 || threads > MAX_THREADS) {
		fprintf(stderr, "usage: kernel_fs IMAGE THREADS (1-%d)\n", MAX_THREADS);
		return 2;
	}
	unlink(argv[1]);
	snprintf(cmd, sizeof(cmd), "mke2fs -q -F -t ext2 -b 4096 '%s' 262144 >/dev/null 2>&1",
	    argv[1]);
	if (system(cmd) != 0)
		die("mke2fs (apt-get install e2fsprogs)");
	if (rump_init() != 0)
		die("rump_init");
	if (rump_pub_etfs_register("/dev/xd0", argv[1], RUMP_ETFS_BLK) != 0)
		die("etfs_register");
	rump_sys_mkdir("/mnt", 0777);
	if (rump_sys_mount("ext2fs", "/mnt", 0, &args, sizeof(args)) != 0)
		die("mount");
	wr = phase(0);
	if (rump_sys_unmount("/mnt", 0) != 0 ||
	    rump_sys_mount("ext2fs", "/mnt", 0, &args, sizeof(args)) != 0)
		die("remount");
	rd = phase(1);
	printf("kernel_ext2_write_fsync_t%d %.1f\n", threads, wr);
	printf("kernel_ext2_read_t%d %.1f\n", threads, rd);
	rump_sys_unmount("/mnt", 0);
	unlink(argv[1]);
	return 0;
}
