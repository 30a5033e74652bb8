/* LIBS: -lrump */
/*
 * rump_init, process creation with rfork from the main thread, and a
 * reboot that must end the process with status 0 through rumpuser_exit.
 */
#include "kt.h"

int main(void) {
	CHECK(rump_init() == 0, "rump_init");
	CHECK(rump_sys_getpid() == 1, "getpid of the boot process");
	CHECK(rump_pub_lwproc_rfork(RUMP_RFCFDG) == 0, "rfork");
	pid_t p = rump_sys_getpid();
	CHECK(p > 1, "new process pid %d", (int)p);
	rump_pub_lwproc_releaselwp();
	printf("boot ok, forked pid %d\n", (int)p);
	fflush(stdout);
	rump_sys_reboot(0, NULL);
	printf("FAIL: reboot returned\n");
	return 1;
}
