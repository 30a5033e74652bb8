/* LIBS: -lrump */
/*
 * Lock misuse by kernel code is stopped with an abort and a message, as
 * NetBSD's pthread librumpuser stops it (its error-checking mutexes; the
 * kernel's own tests expect the SIGABRT): each case boots a kernel in a
 * child process and calls the kernel's own mutex_*, rw_* and cv_* on a
 * virtual CPU. The child tells the parent, on a pipe, the address of the
 * hypervisor lock (the kernel object's first word) and the calling lwp
 * before the misuse; the parent checks that the child died of SIGABRT and
 * that its stderr has one "lock misuse" line naming the operation, that
 * lock and that lwp. A case that is still running after 30 s hangs.
 */
#include "kt.h"
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>

/* sys/mutex.h, sys/rwlock.h, the rump kernel's machine/intr.h */
#define K_MUTEX_SPIN 0
#define K_MUTEX_DEFAULT 2
#define K_IPL_NONE 0
#define K_RW_READER 0
#define K_RW_WRITER 1

/* The kernel's lock objects: the hypervisor object's pointer comes first. */
typedef struct { void *hyp; void *pad[7]; } kobj_t;

void rumpns_mutex_init(kobj_t *, int, int);
void rumpns_mutex_enter(kobj_t *);
void rumpns_mutex_exit(kobj_t *);
void rumpns_mutex_destroy(kobj_t *);
void rumpns_rw_init(kobj_t *);
void rumpns_rw_enter(kobj_t *, int);
void rumpns_rw_exit(kobj_t *);
void rumpns_cv_init(kobj_t *, const char *);
void rumpns_cv_wait(kobj_t *, kobj_t *);
/* rump/rumpuser.h is not for applications; this one is safe anywhere. */
void *rumpuser_curlwp(void);

static int tell_fd;

/* Says what the report must contain, before the misuse. */
static void tell(const char *op, const char *kind, kobj_t *lock) {
	dprintf(tell_fd, "lock misuse: %s: %s %p\nlwp %p\n", op, kind, lock->hyp,
	    rumpuser_curlwp());
}

static void mtx_enter_twice(void) {
	kobj_t m;
	rumpns_mutex_init(&m, K_MUTEX_DEFAULT, K_IPL_NONE);
	rumpns_mutex_enter(&m);
	tell("mutex_enter", "mutex", &m);
	rumpns_mutex_enter(&m);
}

static void spin_enter_twice(void) {
	kobj_t m;
	rumpns_mutex_init(&m, K_MUTEX_SPIN, K_IPL_NONE);
	rumpns_mutex_enter(&m);
	tell("mutex_enter", "mutex", &m);
	rumpns_mutex_enter(&m);
}

static void mtx_exit_unheld(void) {
	kobj_t m;
	rumpns_mutex_init(&m, K_MUTEX_DEFAULT, K_IPL_NONE);
	tell("mutex_exit", "mutex", &m);
	rumpns_mutex_exit(&m);
}

static void mtx_destroy_held(void) {
	kobj_t m;
	rumpns_mutex_init(&m, K_MUTEX_DEFAULT, K_IPL_NONE);
	rumpns_mutex_enter(&m);
	tell("mutex_destroy", "mutex", &m);
	rumpns_mutex_destroy(&m);
}

static void cv_wait_unheld(void) {
	kobj_t m, c;
	rumpns_mutex_init(&m, K_MUTEX_DEFAULT, K_IPL_NONE);
	rumpns_cv_init(&c, "kt");
	tell("cv_wait", "mutex", &m);
	rumpns_cv_wait(&c, &m);
}

static void rw_write_twice(void) {
	kobj_t rw;
	rumpns_rw_init(&rw);
	rumpns_rw_enter(&rw, K_RW_WRITER);
	tell("rw_enter(WRITER)", "rwlock", &rw);
	rumpns_rw_enter(&rw, K_RW_WRITER);
}

static void rw_write_then_read(void) {
	kobj_t rw;
	rumpns_rw_init(&rw);
	rumpns_rw_enter(&rw, K_RW_WRITER);
	tell("rw_enter(READER)", "rwlock", &rw);
	rumpns_rw_enter(&rw, K_RW_READER);
}

static void rw_exit_unheld(void) {
	kobj_t rw;
	rumpns_rw_init(&rw);
	tell("rw_exit", "rwlock", &rw);
	rumpns_rw_exit(&rw);
}

static const struct {
	const char *name;
	void (*fn)(void);
} cases[] = {
	{ "mutex entered twice", mtx_enter_twice },
	{ "spin mutex entered twice", spin_enter_twice },
	{ "mutex exited unheld", mtx_exit_unheld },
	{ "mutex destroyed held", mtx_destroy_held },
	{ "cv_wait without its mutex", cv_wait_unheld },
	{ "rwlock write-entered twice", rw_write_twice },
	{ "rwlock read-entered by its writer", rw_write_then_read },
	{ "rwlock exited unheld", rw_exit_unheld },
};

/* Reads all of fd into buf (NUL-terminated) until EOF or the deadline. */
static void slurp(int fd, char *buf, size_t len, uint64_t deadline) {
	size_t n = 0;
	for (;;) {
		struct pollfd p = { fd, POLLIN, 0 };
		uint64_t now = kt_now_ns();
		if (now >= deadline || n + 1 >= len)
			break;
		if (poll(&p, 1, (int)((deadline - now) / 1000000) + 1) <= 0)
			continue;
		ssize_t r = read(fd, buf + n, len - 1 - n);
		if (r <= 0)
			break;
		n += (size_t)r;
	}
	buf[n] = 0;
}

static int run_case(int i) {
	int tell_p[2], err_p[2];
	CHECK(pipe(tell_p) == 0 && pipe(err_p) == 0, "pipe");
	fflush(stdout);
	pid_t pid = fork();
	CHECK(pid >= 0, "fork");
	if (pid == 0) {
		close(tell_p[0]);
		close(err_p[0]);
		dup2(err_p[1], 2);
		tell_fd = tell_p[1];
		if (rump_init() != 0)
			_exit(10);
		rump_schedule();
		cases[i].fn();
		dprintf(tell_fd, "survived\n");
		_exit(11);
	}
	close(tell_p[1]);
	close(err_p[1]);
	static char told[512], err[8192];
	uint64_t deadline = kt_now_ns() + 30ull * 1000000000;
	slurp(tell_p[0], told, sizeof(told), deadline);
	slurp(err_p[0], err, sizeof(err), deadline);
	close(tell_p[0]);
	close(err_p[0]);
	int st = 0;
	pid_t w;
	while ((w = waitpid(pid, &st, WNOHANG)) == 0 && kt_now_ns() < deadline)
		usleep(10000);
	if (w == 0) {
		kill(pid, SIGKILL);
		waitpid(pid, &st, 0);
		printf("FAIL %s: still running after 30 s (the misuse hangs)\n", cases[i].name);
		return 1;
	}
	if (!WIFSIGNALED(st) || WTERMSIG(st) != SIGABRT) {
		printf("FAIL %s: child status %#x, not SIGABRT\n  told: %s\n  stderr: %s\n",
		    cases[i].name, st, told, err);
		return 1;
	}
	char *line = strstr(err, "lock misuse");
	char *nl = line ? strchr(line, '\n') : NULL;
	if (nl)
		*nl = 0;
	char *saveptr = NULL;
	int bad = line == NULL || strchr(told, '\n') == NULL;
	for (char *want = strtok_r(told, "\n", &saveptr); !bad && want;
	     want = strtok_r(NULL, "\n", &saveptr)) {
		if (strstr(line, want) == NULL) {
			printf("FAIL %s: the report lacks \"%s\"\n", cases[i].name, want);
			bad = 1;
		}
	}
	if (bad) {
		printf("FAIL %s: report: %s\n  stderr: %s\n", cases[i].name, line ? line : "(none)", err);
		return 1;
	}
	printf("lock misuse: %s: SIGABRT with \"%s\"\n", cases[i].name, line);
	return 0;
}

int main(void) {
	int failed = 0;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		failed += run_case((int)i);
	CHECK(failed == 0, "%d lock misuse case(s) not stopped with their message", failed);
	return 0;
}
