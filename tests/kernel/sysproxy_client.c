/* LIBS: -lrumpclient */
/*
 * A remote client of the syscall proxy, on NetBSD's librumpclient. It is
 * started by sysproxy_server.c (which links the kernel and serves it) with
 * RUMP_SERVER set and a mode argument; run on its own it has nothing to
 * talk to and exits 0.
 *
 *   basic   file I/O in the remote kernel: paths (copyinstr), a 200 KiB
 *           write and read back (copyin/copyout), errors
 *   fork    rumpclient_fork: the child is a new remote process sharing
 *           the parent's open file
 *   exec    rumpclient_exec of itself: same remote process, fd kept
 *   block   blocks in a remote read forever (the server kills it)
 *   reboot  reboots the remote kernel (the server process exits)
 */
#include "kt.h"

#include <signal.h>
#include <sys/wait.h>
#include <rump/rumpclient.h>

static char path[64];

static void mkpath(const char *tag) {
	snprintf(path, sizeof(path), "/sp_%s_%d", tag, (int)getpid());
}

static int basic(void) {
	static char buf[200 * 1024], back[200 * 1024];
	pid_t me = rump_sys_getpid();
	CHECK(me > 1, "remote pid %d", (int)me);
	mkpath("basic");
	CHECK(rump_sys_mkdir(path, 0755) == 0, "mkdir %s", path);
	char file[128];
	snprintf(file, sizeof(file), "%s/data", path);
	int fd = rump_sys_open(file, RUMP_O_CREAT | RUMP_O_RDWR, 0644);
	CHECK(fd >= 0, "open %s", file);
	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = (char)(i * 7 + 3);
	CHECK(rump_sys_write(fd, buf, sizeof(buf)) == (ssize_t)sizeof(buf), "write");
	CHECK(rump_sys_lseek(fd, 0, 0 /* SEEK_SET */) == 0, "lseek");
	CHECK(rump_sys_read(fd, back, sizeof(back)) == (ssize_t)sizeof(back), "read");
	CHECK(memcmp(buf, back, sizeof(buf)) == 0, "data read back");
	CHECK(rump_sys_close(fd) == 0, "close");
	errno = 0;
	CHECK(rump_sys_open("/no/such/file", RUMP_O_RDONLY) == -1 && errno == ENOENT,
	    "ENOENT for a missing file");
	errno = 0;
	CHECK(rump_sys_read(1234, back, 1) == -1 && errno == EBADF, "EBADF");
	CHECK(rump_sys_unlink(file) == 0, "unlink");
	CHECK(rump_sys_rmdir(path) == 0, "rmdir");
	CHECK(rump_sys_getpid() == me, "same remote process");
	return 0;
}

static int dofork(void) {
	char b[16];
	pid_t parent = rump_sys_getpid();
	mkpath("fork");
	int fd = rump_sys_open(path, RUMP_O_CREAT | RUMP_O_RDWR, 0644);
	CHECK(fd >= 0, "open");
	pid_t p = rumpclient_fork();
	CHECK(p != -1, "rumpclient_fork");
	if (p == 0) {
		pid_t me = rump_sys_getpid();
		if (me <= 1 || me == parent)
			_exit(2);
		if (rump_sys_write(fd, "child", 5) != 5)
			_exit(3);
		_exit(0);
	}
	int status;
	CHECK(waitpid(p, &status, 0) == p, "waitpid");
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child status %#x", status);
	CHECK(rump_sys_lseek(fd, 0, 0 /* SEEK_SET */) == 0, "lseek");
	CHECK(rump_sys_read(fd, b, sizeof(b)) == 5 && memcmp(b, "child", 5) == 0,
	    "the child wrote through the shared file");
	CHECK(rump_sys_close(fd) == 0 && rump_sys_unlink(path) == 0, "cleanup");
	return 0;
}

static int doexec(char **argv) {
	char v[32];
	extern char **environ;
	mkpath("exec");
	int fd = rump_sys_open(path, RUMP_O_CREAT | RUMP_O_RDWR, 0644);
	CHECK(fd >= 0, "open");
	CHECK(rump_sys_write(fd, "before", 6) == 6, "write");
	snprintf(v, sizeof(v), "%d", (int)rump_sys_getpid());
	setenv("SPT_PID", v, 1);
	snprintf(v, sizeof(v), "%d", fd);
	setenv("SPT_FD", v, 1);
	setenv("SPT_PATH", path, 1);
	char *nargv[] = { argv[0], "exec2", NULL };
	rumpclient_exec("/proc/self/exe", nargv, environ);
	CHECK(0, "rumpclient_exec returned");
	return 1;
}

static int exec2(void) {
	char b[16];
	CHECK(getenv("SPT_PID") && getenv("SPT_FD") && getenv("SPT_PATH"), "environment");
	CHECK(rump_sys_getpid() == atoi(getenv("SPT_PID")), "same remote process after exec");
	int fd = atoi(getenv("SPT_FD"));
	CHECK(rump_sys_lseek(fd, 0, 0 /* SEEK_SET */) == 0, "lseek on the inherited fd");
	CHECK(rump_sys_read(fd, b, sizeof(b)) == 6 && memcmp(b, "before", 6) == 0, "read");
	CHECK(rump_sys_close(fd) == 0 && rump_sys_unlink(getenv("SPT_PATH")) == 0, "cleanup");
	return 0;
}

static int block(void) {
	int p[2];
	char c;
	CHECK(rump_sys_pipe(p) == 0, "pipe");
	printf("blocking in a remote read\n");
	fflush(stdout);
	rump_sys_read(p[0], &c, 1);
	printf("FAIL: read returned\n");
	return 1;
}

int main(int argc, char **argv) {
	if (getenv("RUMP_SERVER") == NULL) {
		printf("no RUMP_SERVER: this program is run by sysproxy_server\n");
		return 0;
	}
	const char *mode = argc > 1 ? argv[1] : "basic";
	CHECK(rumpclient_init() == 0, "rumpclient_init");
	if (strcmp(mode, "basic") == 0)
		return basic();
	if (strcmp(mode, "fork") == 0)
		return dofork();
	if (strcmp(mode, "exec") == 0)
		return doexec(argv);
	if (strcmp(mode, "exec2") == 0)
		return exec2();
	if (strcmp(mode, "block") == 0)
		return block();
	if (strcmp(mode, "reboot") == 0) {
		rump_sys_reboot(0, NULL);
		return 0;
	}
	printf("FAIL: unknown mode %s\n", mode);
	return 1;
}
