// A program for test-steptrace.sh to trace: each *_only function runs in exactly one kind of
// process, so the trace shows which processes steptrace followed. Exits 42 when all went well.
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
#include <sys/wait.h>
#include <unistd.h>

#define NOINLINE __attribute__((noipa)) // no inlining, and no dropping calls whose result is unused
NOINLINE int parent_only(int x) { return x * 3 + 1; }
NOINLINE int fork_child_only(int x) { return x * 5 + 2; }
NOINLINE int vfork_child_only(int x) { return x * 7 + 3; }
NOINLINE void *thread_only(void *p) { return (void *)((long)p * 11 + 4); }
NOINLINE int leftover_child_only(int x) { return x * 17 + 6; }
NOINLINE int never_called(int x) { return x * 13 + 5; }

static volatile sig_atomic_t got_usr1;
NOINLINE void on_usr1(int sig) { got_usr1 = sig; }

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
