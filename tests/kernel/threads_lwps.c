/* LIBS: -lrumpfs_tmpfs -lrumpvfs -lrump */
/*
 * Several host threads enter the kernel at once, each as its own rump
 * process (rfork), doing file I/O on a shared tmpfs (on green threads,
 * each host thread takes the one green CPU in turn).
 */
#include "kt.h"
#include <pthread.h>

#define NTHR 8
static int failures;

static void *worker(void *arg) {
	long id = (long)arg;
	char name[64], buf[512];
	if (rump_pub_lwproc_rfork(RUMP_RFCFDG) != 0) { __sync_fetch_and_add(&failures, 1); return NULL; }
	pid_t me = rump_sys_getpid();
	for (int i = 0; i < 100; i++) {
		snprintf(name, sizeof(name), "/t/w%ld-%d", id, i);
		int fd = rump_sys_open(name, RUMP_O_RDWR | RUMP_O_CREAT, 0644);
		if (fd < 0) { __sync_fetch_and_add(&failures, 1); continue; }
		memset(buf, (int)id, sizeof(buf));
		if (rump_sys_write(fd, buf, sizeof(buf)) != (ssize_t)sizeof(buf)) __sync_fetch_and_add(&failures, 1);
		rump_sys_close(fd);
		if (rump_sys_getpid() != me) __sync_fetch_and_add(&failures, 1);
	}
	rump_pub_lwproc_releaselwp();
	return NULL;
}

int main(void) {
	CHECK(rump_init() == 0, "rump_init");
	kt_mount_tmpfs("/t");
	pthread_t t[NTHR];
	uint64_t t0 = kt_now_ns();
	for (long i = 0; i < NTHR; i++)
		CHECK(pthread_create(&t[i], NULL, worker, (void *)i) == 0, "pthread_create");
	for (int i = 0; i < NTHR; i++)
		pthread_join(t[i], NULL);
	CHECK(failures == 0, "%d failures", failures);
	printf("threads: %d host threads x 100 files as separate rump processes in %.1f ms\n",
	    NTHR, (kt_now_ns() - t0) / 1e6);
	return 0;
}
