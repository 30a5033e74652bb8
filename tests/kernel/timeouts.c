/* LIBS: -lrump */
/*
 * Kernel timeouts (kpause via nanosleep, cv_timedwait via poll) last at
 * least as long as asked. The kernel rounds to its 10 ms tick.
 */
#include "kt.h"

struct kt_timespec { int64_t tv_sec; long tv_nsec; };
struct kt_pollfd { int fd; short events; short revents; };

int main(void) {
	CHECK(rump_init() == 0, "rump_init");
	struct kt_timespec ts = { 0, 30 * 1000 * 1000 };
	uint64_t t0 = kt_now_ns();
	CHECK(rump_sys_nanosleep((void *)&ts, NULL) == 0, "nanosleep");
	uint64_t dt = kt_now_ns() - t0;
	CHECK(dt >= 30 * 1000 * 1000, "nanosleep 30 ms took %.3f ms", dt / 1e6);
	int p[2];
	CHECK(rump_sys_pipe(p) == 0, "pipe");
	struct kt_pollfd pfd = { p[0], 0x0001 /* POLLIN */, 0 };
	t0 = kt_now_ns();
	int r = rump_sys_poll((void *)&pfd, 1, 50);
	uint64_t dp = kt_now_ns() - t0;
	CHECK(r == 0, "poll returned %d", r);
	CHECK(dp >= 50 * 1000 * 1000, "poll 50 ms took %.3f ms", dp / 1e6);
	CHECK(rump_sys_write(p[1], "x", 1) == 1, "pipe write");
	r = rump_sys_poll((void *)&pfd, 1, 5000);
	CHECK(r == 1, "poll with data returned %d", r);
	printf("timeouts: nanosleep(30 ms) %.1f ms, poll(50 ms) %.1f ms\n", dt / 1e6, dp / 1e6);
	return 0;
}
