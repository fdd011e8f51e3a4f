// A program for test-steptrace.sh to trace: each *_only function runs in exactly one kind of
// process, so the trace shows which processes steptrace followed. Exits 42 when all went well.
// Built with -fno-plt, so that its libc calls are the `call *GOT` that steptrace -f
// fast-forwards; the *_cb functions check what -f must still see.
//
// Usage: steptrace-test FIFO
//   A forked child is left blocked opening FIFO after this program exits (as gpurun's `create`
//   leaves its init): steptrace must detach it so that it goes on when the FIFO is opened.
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#define NOINLINE __attribute__((noipa)) // no inlining, and no dropping calls whose result is unused
NOINLINE int parent_only(int x) { return x * 3 + 1; }
NOINLINE int fork_child_only(int x) { return x * 5 + 2; }
NOINLINE int vfork_child_only(int x) { return x * 7 + 3; }
NOINLINE void *thread_only(void *p) { return (void *)((long)p * 11 + 4); }
NOINLINE int leftover_child_only(int x) { return x * 17 + 6; }
NOINLINE int never_called(int x) { return x * 13 + 5; }

static volatile sig_atomic_t got_usr1, got_alarm;
NOINLINE void on_usr1(int sig) { got_usr1 = sig; }
NOINLINE void on_alarm_cb(int sig) { got_alarm = sig; }
NOINLINE int compare_cb(const void *a, const void *b) { return *(const int *)a - *(const int *)b; }
NOINLINE int compare_third_cb(const void *a, const void *b)
{
	return *(const int *)b - *(const int *)a;
}
NOINLINE int after_free_runs(int x) { return x * 19 + 7; }

// -f: library calls seen to return straight back are run free from their third call on;
// one seen calling back (qsort) never is; a signal during a free run has its handler stepped.
static int library_calls(int r)
{
	for (int i = 0; i < 5; i++)
		r += getppid() & 1;
	int v[3] = {3, 1, 2};
	qsort(v, 3, sizeof *v, compare_cb);
	qsort(v, 1, sizeof *v, compare_cb); // one element: returns without calling back
	qsort(v, 1, sizeof *v, compare_cb);
	qsort(v, 3, sizeof *v, compare_third_cb); // stepped: qsort was seen calling back
	if (v[0] != 3)
		return -1;
	signal(SIGALRM, on_alarm_cb);
	usleep(1);
	usleep(1);
	struct itimerval it = {.it_value = {.tv_usec = 50000}};
	setitimer(ITIMER_REAL, &it, 0);
	while (!got_alarm)
		usleep(5000000); // the third call: run free until SIGALRM
	return after_free_runs(r);
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: steptrace-test FIFO\n");
		return 2;
	}
	// A real signal must be delivered, not swallowed as a ptrace stop.
	signal(SIGUSR1, on_usr1);
	raise(SIGUSR1);
	if (!got_usr1)
		return 90;
	int r = parent_only(argc);
	if (library_calls(r) < 0)
		return 94;

	pid_t p = fork();
	if (p == 0)
		_exit(fork_child_only(r) & 0x7f);
	int st;
	if (waitpid(p, &st, 0) != p || !WIFEXITED(st))
		return 91;

	// The vfork child execs a shell that checks it is no longer traced (TracerPid 0).
	p = vfork();
	if (p == 0) {
		vfork_child_only(r);
		execl("/bin/sh", "sh", "-c", "grep -q '^TracerPid:[[:space:]]*0$' /proc/self/status",
		      (char *)0);
		_exit(127);
	}
	if (waitpid(p, &st, 0) != p || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
		return 92;

	pthread_t th;
	void *ret;
	if (pthread_create(&th, 0, thread_only, (void *)2L) || pthread_join(th, &ret))
		return 93;

	// Left behind, blocked, when we exit: it runs leftover_child_only once FIFO is opened.
	p = fork();
	if (p == 0) {
		int fd = open(argv[1], O_WRONLY);
		if (fd < 0)
			_exit(1);
		char c = (char)leftover_child_only(r);
		_exit(write(fd, &c, 1) == 1 ? 0 : 1);
	}

	if (argc > 5)
		never_called(r);
	return 42;
}
