/*
 * A real-kernel small-file workload: NetBSD's kernel layer (linked
 * dynamically, so any librumpuser.so.0 can sit under it) with ext2 on a
 * 256 MiB host image (mke2fs, block size 1024, as small-file file
 * systems are made) registered as a block device, so every block goes
 * through the buffer cache, the block strategy and rumpuser_bio.
 *
 * usage: kernel_smallfiles IMAGE FILES THREADS
 * THREADS host threads (each its own kernel process, in a directory of
 * its own) together handle FILES files of 1 to 8 KiB:
 *   create  open(O_CREAT), write, fsync, close every file;
 *   remount unmount and mount the file system (the kernel's caches are
 *           cold, the host's page cache is not);
 *   read    open, read back and check, close every file;
 *   unlink  remove every file, then sync.
 * Prints "kernel_ext2_smallfiles_<phase>_tTHREADS MS" for each phase and
 * "kernel_ext2_smallfiles_tTHREADS MS" for the whole (wall-clock
 * milliseconds, lower is better). With THREADS 1 everything runs on the
 * calling thread.
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

#define MAX_THREADS 64
#define MAX_BYTES 8192

struct ufs_args {
	char *fspec;
};

enum phase { CREATE, READ, UNLINK };

static int threads, nfiles;
static enum phase phase;
static volatile int failed;

/* File f's size and the byte at offset i: both depend on f only. */
static size_t
size_of(int f)
{
	return 1024 + (size_t)((f * 2654435761u) % (MAX_BYTES - 1024 + 1));
}

static char
byte_of(int f, size_t i)
{
	return (char)((f * 31 + i * 7) & 0xff);
}

/* Thread `id`'s share of the files in the current phase. */
static int
files(int id, char *buf)
{
	char name[64];

	for (int f = id; f < nfiles; f += threads) {
		size_t n = size_of(f);
		int fd;

		snprintf(name, sizeof(name), "/mnt/d%d/f%d", id, f);
		switch (phase) {
		case CREATE:
			for (size_t i = 0; i < n; i++)
				buf[i] = byte_of(f, i);
			fd = rump_sys_open(name, RUMP_O_RDWR | RUMP_O_CREAT | RUMP_O_EXCL, 0644);
			if (fd < 0 || rump_sys_write(fd, buf, n) != (ssize_t)n ||
			    rump_sys_fsync(fd) != 0)
				return -1;
			rump_sys_close(fd);
			break;
		case READ:
			fd = rump_sys_open(name, RUMP_O_RDONLY);
			if (fd < 0 || rump_sys_read(fd, buf, MAX_BYTES) != (ssize_t)n)
				return -1;
			for (size_t i = 0; i < n; i++)
				if (buf[i] != byte_of(f, i))
					return -1;
			rump_sys_close(fd);
			break;
		case UNLINK:
			if (rump_sys_unlink(name) != 0)
				return -1;
			break;
		}
	}
	return 0;
}

static void *
worker(void *arg)
{
	int id = (int)(uintptr_t)arg;
	char *buf = malloc(MAX_BYTES);
	int ok = buf != NULL && rump_pub_lwproc_rfork(RUMP_RFFDG) == 0;

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

/* Every thread through its files once; milliseconds. */
static double
run(enum phase p)
{
	uint64_t t0;

	phase = p;
	if (threads == 1) {
		char *buf = malloc(MAX_BYTES);

		if (buf == NULL)
			die("malloc");
		t0 = now();
		if (files(0, buf) != 0)
			die(p == CREATE ? "create" : p == READ ? "read" : "unlink");
		t0 = now() - t0;
		free(buf);
	} else {
		t0 = run_together(threads, worker);
		if (failed)
			die(p == CREATE ? "create" : p == READ ? "read" : "unlink");
	}
	return (double)t0 / 1e6;
}

int
main(int argc, char **argv)
{
	struct ufs_args args = { .fspec = "/dev/xd0" };
	char cmd[4096], dir[32];
	double create, remount, rd, unlink_ms;
	uint64_t t0;

	if (argc != 4 || (nfiles = atoi(argv[2])) < 1 ||
	    (threads = atoi(argv[3])) < 1 || threads > MAX_THREADS) {
		fprintf(stderr, "usage: kernel_smallfiles IMAGE FILES THREADS (1-%d)\n",
		    MAX_THREADS);
		return 2;
	}
	unlink(argv[1]);
	snprintf(cmd, sizeof(cmd),
	    "mke2fs -q -F -t ext2 -b 1024 -N 65536 '%s' 262144 >/dev/null 2>&1", argv[1]);
	if (system(cmd) != 0)
		die("mke2fs (apt-get install e2fsprogs)");
	if (rump_init() != 0)
		die("rump_init");
	if (rump_pub_etfs_register("/dev/xd0", argv[1], RUMP_ETFS_BLK) != 0)
		die("etfs_register");
	rump_sys_mkdir("/mnt", 0777);
	if (rump_sys_mount("ext2fs", "/mnt", 0, &args, sizeof(args)) != 0)
		die("mount");
	for (int i = 0; i < threads; i++) {
		snprintf(dir, sizeof(dir), "/mnt/d%d", i);
		if (rump_sys_mkdir(dir, 0755) != 0)
			die("mkdir");
	}
	create = run(CREATE);
	t0 = now();
	if (rump_sys_unmount("/mnt", 0) != 0 ||
	    rump_sys_mount("ext2fs", "/mnt", 0, &args, sizeof(args)) != 0)
		die("remount");
	remount = (double)(now() - t0) / 1e6;
	rd = run(READ);
	unlink_ms = run(UNLINK);
	t0 = now();
	rump_sys_sync();
	unlink_ms += (double)(now() - t0) / 1e6;
	printf("kernel_ext2_smallfiles_create_t%d %.1f\n", threads, create);
	printf("kernel_ext2_smallfiles_remount_t%d %.1f\n", threads, remount);
	printf("kernel_ext2_smallfiles_read_t%d %.1f\n", threads, rd);
	printf("kernel_ext2_smallfiles_unlink_t%d %.1f\n", threads, unlink_ms);
	printf("kernel_ext2_smallfiles_t%d %.1f\n", threads,
	    create + remount + rd + unlink_ms);
	rump_sys_unmount("/mnt", 0);
	unlink(argv[1]);
	return 0;
}
