// steptrace: single-step a program and every process/thread it creates, and record which
// instructions of the program's own executable ran, in first-execution order.
//
// Usage: steptrace OUT.txt PROGRAM ARGS...
//
// OUT.txt gets one `seq hexaddr` line per distinct instruction address, where hexaddr is the
// link-time virtual address (what `nm` prints) and seq the order in which it was first seen
// across all traced processes. Only addresses inside PROGRAM's executable mappings count;
// time spent in ld.so, libc and the vdso is stepped through but not recorded.
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
// valgrind/callgrind would give the same list, but cannot run a container runtime (missing
// syscalls). Build: gcc -O2 -o steptrace steptrace.c
#define _GNU_SOURCE
#include <elf.h>
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef __x86_64__
#error "steptrace reads RIP: x86_64 only"
#endif

static void die(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("steptrace: ", stderr);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(125);
}

static void *xrealloc(void *p, size_t n)
{
	p = realloc(p, n);
	if (!p)
		die("out of memory");
	return p;
}

// ---- set of seen addresses: open addressing, linear probing; `order` keeps first-seen order.
// 0 marks an empty slot (no instruction lives at link-time address 0).

static uint64_t *slots;
static size_t nslots; // power of two
static uint64_t *order;
static size_t nseen, order_cap;

static size_t slot_of(uint64_t a)
{
	return (size_t)((a * 0x9E3779B97F4A7C15ull) >> 20) & (nslots - 1);
}

static void set_grow(void)
{
	uint64_t *old = slots;
	size_t oldn = nslots;
	nslots = nslots ? nslots * 2 : 1 << 16;
	slots = calloc(nslots, sizeof *slots);
	if (!slots)
		die("out of memory");
	for (size_t i = 0; i < oldn; i++) {
		if (!old[i])
			continue;
		size_t j = slot_of(old[i]);
		while (slots[j])
			j = (j + 1) & (nslots - 1);
		slots[j] = old[i];
	}
	free(old);
}

static void see(uint64_t a)
{
	size_t j = slot_of(a);
	while (slots[j]) {
		if (slots[j] == a)
			return;
		j = (j + 1) & (nslots - 1);
	}
	slots[j] = a;
	if (nseen == order_cap) {
		order_cap = order_cap ? order_cap * 2 : 1 << 16;
		order = xrealloc(order, order_cap * sizeof *order);
	}
	order[nseen++] = a;
	if (nseen * 2 > nslots)
		set_grow();
}

// ---- PROGRAM's text: its executable mappings and the load bias (runtime - link-time address).
// fork/clone children share the layout; anything that execs again is detached, so one layout
// serves every tracee.

#define MAX_TEXT 8
static struct {
	uint64_t start, end;
} text[MAX_TEXT];
static int ntext;
static uint64_t bias;
static bool layout_ready; // PROGRAM's exec was seen
static uint64_t entry;    // runtime address of PROGRAM's entry point
static long entry_word;   // the original word at `entry`, under our int3
static bool stepping;     // the entry point was reached: single-step from now on

// Link-time vaddr of file offset `off` of an executable mapping, from the ELF's executable
// PT_LOAD header (a page may hold the ends of two segments; only the r-x one is ours).
static bool vaddr_of_offset(const char *exe, uint64_t off, uint64_t *vaddr, uint64_t *e_entry)
{
	FILE *f = fopen(exe, "rb");
	if (!f)
		die("open %s: %s", exe, strerror(errno));
	Elf64_Ehdr eh;
	if (fread(&eh, sizeof eh, 1, f) != 1 || memcmp(eh.e_ident, ELFMAG, SELFMAG) ||
	    eh.e_ident[EI_CLASS] != ELFCLASS64)
		die("%s: not a 64-bit ELF file", exe);
	*e_entry = eh.e_entry;
	bool found = false;
	for (int i = 0; i < eh.e_phnum && !found; i++) {
		Elf64_Phdr ph;
		if (fseek(f, (long)(eh.e_phoff + (uint64_t)i * eh.e_phentsize), SEEK_SET) ||
		    fread(&ph, sizeof ph, 1, f) != 1)
			die("%s: truncated program headers", exe);
		// The mapping starts page-aligned at or below p_offset: compare page-aligned.
		uint64_t pg_off = ph.p_offset & ~(uint64_t)0xfff;
		if (ph.p_type == PT_LOAD && (ph.p_flags & PF_X) && off >= pg_off && off < ph.p_offset + ph.p_filesz) {
			*vaddr = (ph.p_vaddr & ~(uint64_t)0xfff) + (off - pg_off);
			found = true;
		}
	}
	fclose(f);
	return found;
}

// Called at PROGRAM's exec stop: find its r-x mappings in /proc/PID/maps.
static void load_layout(pid_t pid)
{
	char path[64], exe[4096];
	snprintf(path, sizeof path, "/proc/%d/exe", pid);
	ssize_t n = readlink(path, exe, sizeof exe - 1);
	if (n < 0)
		die("readlink %s: %s", path, strerror(errno));
	exe[n] = 0;
	struct stat st;
	if (stat(path, &st))
		die("stat %s: %s", path, strerror(errno));

	snprintf(path, sizeof path, "/proc/%d/maps", pid);
	FILE *m = fopen(path, "r");
	if (!m)
		die("open %s: %s", path, strerror(errno));
	char line[4096 + 128];
	while (fgets(line, sizeof line, m)) {
		unsigned long long start, end, off, ino;
		unsigned maj, min;
		char perms[8];
		int name_at = 0;
		if (sscanf(line, "%llx-%llx %7s %llx %x:%x %llu %n", &start, &end, perms, &off, &maj,
			   &min, &ino, &name_at) < 7)
			continue;
		line[strcspn(line, "\n")] = 0;
		bool same_file = (ino == st.st_ino && maj == major(st.st_dev) && min == minor(st.st_dev)) ||
				 (name_at && strcmp(line + name_at, exe) == 0);
		if (!same_file || perms[2] != 'x')
			continue;
		uint64_t vaddr;
		if (!vaddr_of_offset(exe, off, &vaddr, &entry))
			die("%s: no PT_LOAD maps file offset %#llx", exe, off);
		if (ntext == MAX_TEXT)
			die("%s: more than %d executable mappings", exe, MAX_TEXT);
		text[ntext].start = start;
		text[ntext].end = end;
		ntext++;
		bias = start - vaddr; // the same for every segment of one ELF object
	}
	fclose(m);
	if (!ntext)
		die("no executable mapping of %s in %s", exe, path);
	layout_ready = true;

	// Run to the entry point: plant an int3 there (the process is alone in its memory now).
	entry += bias;
	errno = 0;
	entry_word = ptrace(PTRACE_PEEKTEXT, pid, entry, 0);
	if (errno || ptrace(PTRACE_POKETEXT, pid, entry, (void *)((entry_word & ~0xffL) | 0xcc)))
		die("breakpoint at entry %#llx of %d: %s", (unsigned long long)entry, pid, strerror(errno));
}

// The int3 at the entry point was hit (RIP is just past it): put the code back, rewind.
static void entry_reached(pid_t pid)
{
	if (ptrace(PTRACE_POKETEXT, pid, entry, (void *)entry_word) ||
	    ptrace(PTRACE_POKEUSER, pid, offsetof(struct user_regs_struct, rip), (void *)entry))
		die("removing the entry breakpoint of %d: %s", pid, strerror(errno));
	stepping = true;
}

static void record_rip(pid_t pid)
{
	errno = 0;
	long rip = ptrace(PTRACE_PEEKUSER, pid, offsetof(struct user_regs_struct, rip), 0);
	if (rip == -1 && errno)
		return; // the tracee vanished (SIGKILL): its exit is reported next
	for (int i = 0; i < ntext; i++)
		if ((uint64_t)rip >= text[i].start && (uint64_t)rip < text[i].end) {
			see((uint64_t)rip - bias);
			return;
		}
}

// ---- tracees. Few at a time (a runtime makes a handful of processes): a plain array.

struct tracee {
	pid_t pid;
	bool started;   // its first stop (the auto-attach SIGSTOP) was seen
	bool stop_sent; // we sent SIGSTOP to detach it (after PROGRAM exited)
};
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

static void detach(pid_t pid)
{
	// ESRCH: already gone (killed); its exit report then goes to nobody but the real parent.
	ptrace(PTRACE_DETACH, pid, 0, 0);
	drop(pid);
}

// Let a stopped tracee go on: one instruction at a time once PROGRAM runs, freely otherwise.
static void resume(struct tracee *t, int sig)
{
	int req = stepping && !finishing ? PTRACE_SINGLESTEP : PTRACE_CONT;
	if (ptrace(req, t->pid, 0, (void *)(long)sig) && errno != ESRCH)
		die("ptrace resume %d: %s", t->pid, strerror(errno));
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
		if (!find((pid_t)msg))
			add((pid_t)msg);
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
			detach(t->pid);
			return;
		}
		break; // our SIGSTOP is pending: detach at that stop, or it would stop the process
	}
	record_rip(t->pid);
	resume(t, 0);
}

// A signal-delivery-stop (or group-stop) with signal `sig`.
static void on_signal(struct tracee *t, int sig)
{
	if (!t->started && sig == SIGSTOP) { // the auto-attach stop
		t->started = true;
		if (finishing) {
			detach(t->pid);
			return;
		}
		if (stepping)
			record_rip(t->pid);
		resume(t, 0);
		return;
	}
	t->started = true;
	if (finishing && t->stop_sent && sig == SIGSTOP) {
		detach(t->pid);
		return;
	}
	siginfo_t si;
	if (ptrace(PTRACE_GETSIGINFO, t->pid, 0, &si)) {
		// EINVAL: a group-stop, not a signal to deliver. Non-seized tracees cannot stay in it.
		resume(t, 0);
		return;
	}
	if (sig == SIGTRAP && !stepping && si.si_code == SI_KERNEL && layout_ready) {
		errno = 0;
		long rip = ptrace(PTRACE_PEEKUSER, t->pid, offsetof(struct user_regs_struct, rip), 0);
		if (!errno && (uint64_t)rip == entry + 1) {
			entry_reached(t->pid);
			record_rip(t->pid);
			resume(t, 0);
			return;
		}
	}
	if (sig == SIGTRAP && si.si_code > 0) { // kernel-made trap: our single-step
		steps++;
		if (!finishing)
			record_rip(t->pid);
		resume(t, 0);
		return;
	}
	resume(t, sig); // a real signal: deliver it
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

static void write_out(const char *path)
{
	FILE *f = fopen(path, "w");
	if (!f)
		die("open %s: %s", path, strerror(errno));
	for (size_t i = 0; i < nseen; i++)
		fprintf(f, "%zu %llx\n", i, (unsigned long long)order[i]);
	if (fclose(f))
		die("write %s: %s", path, strerror(errno));
}

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: steptrace OUT.txt PROGRAM [ARGS...]\n");
		return 2;
	}
	set_grow();
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
	fprintf(stderr, "steptrace: %llu steps, %zu addresses, %llu processes/threads, %.2f s\n", steps,
		nseen, nprocs, secs);
	if (program_status == -1)
		die("lost track of %s", argv[2]);
	if (WIFSIGNALED(program_status))
		return 128 + WTERMSIG(program_status);
	return WEXITSTATUS(program_status);
}
