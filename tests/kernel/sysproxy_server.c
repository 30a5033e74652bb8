/* LIBS: -lrumpkern_sysproxy -lrumpvfs -lrump */
/*
 * The syscall proxy against a real kernel: a forked child boots the
 * kernel and serves it with rump_init_server("unix://<relative path>");
 * the parent runs the sysproxy_client program (built next to this one,
 * same link mode) against it: one client, many at once, fork, exec, a
 * client killed while blocked in the kernel, and finally a client that
 * reboots the kernel, which must end the server with status 0 and remove
 * the socket. A library without a syscall proxy (EOPNOTSUPP) is skipped.
 * Both flavours serve: posix on its poll loop thread and workers, green on
 * green threads while the main thread sleeps in the kernel.
 */
#include "kt.h"

#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>

static char client[256];
static char url[128];

static pid_t spawn(const char *mode) {
	pid_t p = fork();
	CHECK(p != -1, "fork");
	if (p == 0) {
		execl(client, client, mode, (char *)NULL);
		_exit(127);
	}
	return p;
}

static int finish(pid_t p) {
	int status;
	CHECK(waitpid(p, &status, 0) == p, "waitpid");
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static void run(const char *mode) {
	int rc = finish(spawn(mode));
	CHECK(rc == 0, "client '%s' exited with %d", mode, rc);
	printf("client %s: ok\n", mode);
	fflush(stdout);
}

int main(int argc, char **argv) {
	(void)argc;
	const char *suffix = strrchr(argv[0], '-');
	snprintf(client, sizeof(client), "./sysproxy_client%s", suffix ? suffix : "");
	if (access(client, X_OK) != 0) {
		printf("SKIP: %s not built\n", client);
		return 0;
	}
	char sock[64];
	snprintf(sock, sizeof(sock), "sp-%d.sock", (int)getpid());
	snprintf(url, sizeof(url), "unix://%s", sock);
	unlink(sock);

	pid_t server = fork();
	CHECK(server != -1, "fork");
	if (server == 0) {
		alarm(100);
		if (rump_init() != 0)
			_exit(10);
		int e = rump_init_server(url);
		if (e != 0)
			_exit(e == RUMP_EOPNOTSUPP ? 12 : 11);
		/*
		 * Serve until a client reboots the kernel. Sleep inside the
		 * kernel rather than in pause(): with green threads the server
		 * runs only while this thread is in a hypercall.
		 */
		for (;;) {
			struct timespec ts = { 1, 0 };
			rump_sys_nanosleep((void *)&ts, NULL);
		}
	}
	struct stat st;
	uint64_t t0 = kt_now_ns();
	while (stat(sock, &st) != 0) {
		int status;
		if (waitpid(server, &status, WNOHANG) == server) {
			if (WIFEXITED(status) && WEXITSTATUS(status) == 12) {
				printf("SKIP: this library has no syscall proxy (EOPNOTSUPP)\n");
				return 0;
			}
			CHECK(0, "server exited early, status %#x", status);
		}
		CHECK(kt_now_ns() - t0 < 20000000000ull, "server socket appears");
		usleep(10000);
	}
	CHECK((st.st_mode & 0777) == 0600, "socket mode %o is owner-only", st.st_mode & 0777);
	setenv("RUMP_SERVER", url, 1);

	run("basic");

	enum { N = 12 };
	pid_t many[N];
	for (int i = 0; i < N; i++)
		many[i] = spawn(i % 3 == 0 ? "fork" : "basic");
	for (int i = 0; i < N; i++)
		CHECK(finish(many[i]) == 0, "concurrent client %d", i);
	printf("%d concurrent clients: ok\n", N);

	run("fork");
	run("exec");

	pid_t b = spawn("block");
	usleep(500000);
	CHECK(kill(b, SIGKILL) == 0, "kill the blocked client");
	CHECK(finish(b) == 128 + SIGKILL, "client killed");
	printf("client killed while blocked in the kernel: ok\n");
	run("basic");

	run("reboot");
	t0 = kt_now_ns();
	int status;
	pid_t w;
	while ((w = waitpid(server, &status, WNOHANG)) == 0) {
		CHECK(kt_now_ns() - t0 < 20000000000ull, "server exits after reboot");
		usleep(10000);
	}
	CHECK(w == server && WIFEXITED(status) && WEXITSTATUS(status) == 0,
	    "server exit status %#x", status);
	CHECK(access(sock, F_OK) != 0, "socket removed at halt");
	printf("reboot from a client ended the server: ok\n");
	return 0;
}
