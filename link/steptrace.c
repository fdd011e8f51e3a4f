// steptrace: single-step a program and every process/thread it creates, and record which
// instructions of the program's own executable ran, in first-execution order.
//
// Usage: steptrace [-f] OUT.txt PROGRAM ARGS...
//
// OUT.txt gets one `seq hexaddr` line per distinct instruction address, where hexaddr is the
// link-time virtual address (what `nm` prints) and seq the order in which it was first seen
// across all traced processes. Only addresses inside PROGRAM's executable mappings count;
// code elsewhere (libc, ld.so, the vdso) is stepped through but not recorded.
//
// What is followed: PROGRAM's own exec, then every clone/fork/vfork of it (threads too, and
// children in new namespaces). A traced process that execs anything later (the container's
// command, a hook, `ps`) is detached at once: it is no longer PROGRAM. When PROGRAM's first
// process exits, tracees still alive (e.g. the init `create` leaves waiting for `start`) are
// stopped with SIGSTOP and detached so they go on untouched. Exit status: PROGRAM's.
//
// ld.so's start-up (relocation: ~40% of a short run's instructions) is not stepped: a
// breakpoint at PROGRAM's entry point lets it run free until then. Nothing of PROGRAM's own
// code runs before its entry (ld.so leaves the executable's constructors to libc's start code).
//
// -f (fast-forward): a call from PROGRAM into a library function (malloc, memcpy, ...) that was
// seen to return twice before without running any of PROGRAM's code in between is no longer
// stepped: a hardware breakpoint on its return address lets it run free. A signal during
// such a call ends the free run (its handler is stepped). This halves the steps of a
// container runtime's commands; what it could miss is a callback (a library function calling
// PROGRAM's code) that did not happen in the first calls and happens in a later one.
//
// valgrind/callgrind would give the same list, but cannot run a container runtime (missing
// syscalls). Build: gcc -O2 -o steptrace steptrace.c steptrace-text.c steptrace-fast.c
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "steptrace.h"

void die(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("steptrace: ", stderr);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(125);
}

void *xrealloc(void *p, size_t n)
{
	p = realloc(p, n);
	if (!p)
		die("out of memory");
	return p;
}

// ---- tracees. Few at a time (a runtime makes a handful of processes): a plain array.

static struct tracee *tracees;
static int ntracees, tracees_cap;
static bool finishing; // PROGRAM's first process exited: detach everyone left
static unsigned long long steps, nprocs;

static struct tracee *find(pid_t pid)
{
	for (int i = 0; i < ntracees; i++)
		if (tracees[i].pid == pid)
			return &tracees[i];
	return NULL;
}

static struct tracee *add(pid_t pid)
{
	if (ntracees == tracees_cap) {
		tracees_cap = tracees_cap ? tracees_cap * 2 : 16;
		tracees = xrealloc(tracees, tracees_cap * sizeof *tracees);
	}
	tracees[ntracees] = (struct tracee){.pid = pid};
	nprocs++;
	return &tracees[ntracees++];
}

static void drop(pid_t pid)
{
	struct tracee *t = find(pid);
	if (t)
		*t = tracees[--ntracees];
}

static void detach(struct tracee *t)
{
	if (t->skipping)
		set_breakpoint(t, 0);
	// ESRCH: already gone (killed); its exit report then goes to nobody but the real parent.
	ptrace(PTRACE_DETACH, t->pid, 0, 0);
	drop(t->pid);
}

// Let a stopped tracee go on: one instruction at a time once PROGRAM runs, freely before
// that, after it is done, and through a fast-forwarded library call.
static void resume(struct tracee *t, int sig)
{
	int req = stepping && !finishing && !t->skipping ? PTRACE_SINGLESTEP : PTRACE_CONT;
	if (ptrace(req, t->pid, 0, (void *)(long)sig) && errno != ESRCH)
		die("ptrace resume %d: %s", t->pid, strerror(errno));
}

// The tracee stopped (after a step, or at its first stop or an event): record where it is.
static void at_instruction(struct tracee *t)
{
	struct user_regs_struct r;
	if (ptrace(PTRACE_GETREGS, t->pid, 0, &r))
		return; // the tracee vanished (SIGKILL): its exit is reported next
	bool here = in_text(r.rip);
	if (here) {
		see(r.rip);
		if (t->callee)
			back_in_text(t, r.rip, r.rsp);
	} else if (fast && t->in_text) {
		left_text(t, r.rip, r.rsp);
	}
	t->in_text = here;
	t->rip = r.rip;
	t->rsp = r.rsp;
}

// PROGRAM is done: stop each remaining tracee so it can be detached (a non-seized tracee can
// only be detached from a ptrace-stop). Tracees not yet started stop on their own.
static void begin_finishing(void)
{
	finishing = true;
	for (int i = 0; i < ntracees; i++)
		if (tracees[i].started && !tracees[i].stop_sent) {
			syscall(SYS_tkill, tracees[i].pid, SIGSTOP);
			tracees[i].stop_sent = true;
		}
}

static void on_event(struct tracee *t, int event)
{
	unsigned long msg = 0;
	ptrace(PTRACE_GETEVENTMSG, t->pid, 0, &msg);
	switch (event) {
	case PTRACE_EVENT_CLONE:
	case PTRACE_EVENT_FORK:
	case PTRACE_EVENT_VFORK:
		// The child's own first stop may have been reported already.
		if (!find((pid_t)msg)) {
			pid_t pid = t->pid;
			add((pid_t)msg);
			t = find(pid); // add() may have moved the array
		}
		break;
	case PTRACE_EVENT_EXEC:
		if (!layout_ready) {
			load_layout(t->pid); // PROGRAM itself: trace from here
			break;
		}
		// A later exec: whatever it runs is not PROGRAM. A non-leader thread that execs takes
		// the leader's pid; msg is its old tid, which is gone.
		if ((pid_t)msg != t->pid)
			drop((pid_t)msg);
		if (!finishing || !t->stop_sent) {
			detach(t);
			return;
		}
		break; // our SIGSTOP is pending: detach at that stop, or it would stop the process
	}
	if (stepping && !t->skipping)
		at_instruction(t);
	resume(t, 0);
}

// A signal-delivery-stop (or group-stop) with signal `sig`.
static void on_signal(struct tracee *t, int sig)
{
	if (!t->started && sig == SIGSTOP) { // the auto-attach stop
		t->started = true;
		if (finishing) {
			detach(t);
			return;
		}
		if (stepping)
			at_instruction(t);
		resume(t, 0);
		return;
	}
	t->started = true;
	if (finishing && t->stop_sent && sig == SIGSTOP) {
		detach(t);
		return;
	}
	siginfo_t si;
	if (ptrace(PTRACE_GETSIGINFO, t->pid, 0, &si)) {
		// EINVAL: a group-stop, not a signal to deliver. Non-seized tracees cannot stay in it.
		resume(t, 0);
		return;
	}
	if (sig == SIGTRAP && si.si_code == SI_KERNEL && !stepping && layout_ready &&
	    entry_breakpoint_hit(t->pid)) {
		at_instruction(t);
		resume(t, 0);
		return;
	}
	if (sig == SIGTRAP && si.si_code == TRAP_HWBKPT) {
		set_breakpoint(t, 0); // back from a fast-forwarded call: step again
		if (!finishing)
			at_instruction(t);
		resume(t, 0);
		return;
	}
	if (sig == SIGTRAP && si.si_code > 0) { // kernel-made trap: our single-step
		steps++;
		if (!finishing)
			at_instruction(t);
		resume(t, 0);
		return;
	}
	// A real signal: deliver it. Its handler may be PROGRAM's code: step from here.
	if (t->skipping) {
		set_breakpoint(t, 0);
		t->callee = 0;
		t->in_text = false;
	}
	resume(t, sig);
}

static int program_status = -1;

static void trace(pid_t main_pid)
{
	for (;;) {
		if (program_status != -1 && ntracees == 0)
			return;
		int st;
		pid_t pid = waitpid(-1, &st, __WALL);
		if (pid < 0) {
			if (errno == EINTR)
				continue;
			if (errno == ECHILD)
				return;
			die("waitpid: %s", strerror(errno));
		}
		if (WIFEXITED(st) || WIFSIGNALED(st)) {
			drop(pid); // unknown pids: detached processes we are the real parent of
			if (pid == main_pid) {
				program_status = st;
				begin_finishing();
			}
			continue;
		}
		if (!WIFSTOPPED(st))
			continue;
		struct tracee *t = find(pid);
		if (!t)
			t = add(pid); // a new child whose parent's clone event is still to come
		if (st >> 16)
			on_event(t, st >> 16);
		else
			on_signal(t, WSTOPSIG(st));
	}
}

int main(int argc, char **argv)
{
	if (argc > 1 && strcmp(argv[1], "-f") == 0) {
		fast = true;
		argv++;
		argc--;
	}
	if (argc < 3) {
		fprintf(stderr, "usage: steptrace [-f] OUT.txt PROGRAM [ARGS...]\n");
		return 2;
	}
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);

	pid_t child = fork();
	if (child < 0)
		die("fork: %s", strerror(errno));
	if (child == 0) {
		if (ptrace(PTRACE_TRACEME, 0, 0, 0))
			die("PTRACE_TRACEME: %s", strerror(errno));
		raise(SIGSTOP); // wait for the tracer to set its options
		execvp(argv[2], argv + 2);
		fprintf(stderr, "steptrace: exec %s: %s\n", argv[2], strerror(errno));
		_exit(127);
	}
	int st;
	if (waitpid(child, &st, 0) != child || !WIFSTOPPED(st))
		die("child %d did not stop before exec", child);
	long opts = PTRACE_O_TRACECLONE | PTRACE_O_TRACEFORK | PTRACE_O_TRACEVFORK |
		    PTRACE_O_TRACEEXEC | PTRACE_O_EXITKILL;
	if (ptrace(PTRACE_SETOPTIONS, child, 0, (void *)opts))
		die("PTRACE_SETOPTIONS: %s", strerror(errno));
	struct tracee *t = add(child);
	t->started = true;
	resume(t, 0); // not stepped: nothing before the exec is PROGRAM's

	trace(child);
	write_out(argv[1]);

	clock_gettime(CLOCK_MONOTONIC, &t1);
	double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	fprintf(stderr,
		"steptrace: %llu steps, %llu calls run free, %zu addresses, %llu processes/threads, "
		"%.2f s\n",
		steps, skips, nseen, nprocs, secs);
	if (program_status == -1)
		die("lost track of %s", argv[2]);
	if (WIFSIGNALED(program_status))
		return 128 + WTERMSIG(program_status);
	return WEXITSTATUS(program_status);
}
