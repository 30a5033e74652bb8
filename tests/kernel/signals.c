/* LIBS: -lrump */
/*
 * The "raise" signal model: a signal posted to a local rump process reaches
 * the host process through rumpuser_kill. Writing to a pipe without a
 * reader makes the kernel post SIGPIPE to the writer.
 */
#include "kt.h"
#include <signal.h>

static volatile sig_atomic_t got;
static void handler(int s) { got = s; }

int main(void) {
	int p[2];
	signal(SIGPIPE, handler);
	rump_boot_setsigmodel(RUMP_SIGMODEL_RAISE);
	CHECK(rump_init() == 0, "rump_init");
	CHECK(rump_sys_pipe(p) == 0, "pipe");
	CHECK(rump_sys_close(p[0]) == 0, "close the read end");
	CHECK(rump_sys_write(p[1], "x", 1) == -1 && errno == 32, "write without a reader must fail with EPIPE");
	for (int i = 0; i < 100 && !got; i++)
		usleep(1000);
	CHECK(got == SIGPIPE, "host got signal %d, wanted SIGPIPE (%d)", (int)got, SIGPIPE);
	printf("signals: the kernel's SIGPIPE reached the host through rumpuser_kill\n");
	return 0;
}
