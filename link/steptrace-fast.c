// steptrace -f: fast-forward PROGRAM's calls into library functions that were seen to return
// straight back (see steptrace.c): a hardware breakpoint on the return address, and no steps
// until it is hit.
#define _GNU_SOURCE
#include <errno.h>
#include <stddef.h>
#include <sys/ptrace.h>
#include <sys/user.h>

#include "steptrace.h"

bool fast;
unsigned long long skips; // calls run free

// Library functions PROGRAM called, by entry address, and what their stepped calls showed.
// Fixed size: once it is full, calls to new functions are simply always stepped.
#define RETURNS_TO_TRUST 2
struct callee {
	uint64_t entry;
	int returns;     // stepped calls that came straight back to the caller
	bool calls_back; // a stepped call ran PROGRAM's code before returning
};
static struct callee callees[1 << 14];

static struct callee *callee(uint64_t entry)
{
	size_t n = sizeof callees / sizeof *callees, j = hash(entry) & (n - 1);
	for (size_t probes = 0; probes < n; probes++, j = (j + 1) & (n - 1)) {
		if (callees[j].entry == entry)
			return &callees[j];
		if (!callees[j].entry) {
			callees[j].entry = entry;
			return &callees[j];
		}
	}
	return NULL;
}

// Hardware breakpoint 0 (DR0, enabled in DR7) of a stopped tracee: on executing `addr`, or
// off (addr 0). Per thread: fork children and threads do not get it.
bool set_breakpoint(struct tracee *t, uint64_t addr)
{
	if (addr &&
	    ptrace(PTRACE_POKEUSER, t->pid, offsetof(struct user, u_debugreg[0]), (void *)addr))
		return false;
	if (ptrace(PTRACE_POKEUSER, t->pid, offsetof(struct user, u_debugreg[7]),
		   (void *)(addr ? 1L : 0L)))
		return false;
	t->skipping = addr != 0;
	return true;
}

// The tracee has just stepped from PROGRAM's code into library code at `entry`, its stack
// pointer now `rsp`. If that was a call, either run it free (a callee known to return
// straight back) or step it and watch what it does.
void left_text(struct tracee *t, uint64_t entry, uint64_t rsp)
{
	errno = 0;
	uint64_t ret = (uint64_t)ptrace(PTRACE_PEEKDATA, t->pid, rsp, 0);
	// A call pushed the address of the instruction after it (at most 15 bytes long).
	if (errno || rsp != t->rsp - 8 || !in_text(ret) || ret <= t->rip || ret > t->rip + 15)
		return;
	struct callee *c = callee(entry);
	if (!c)
		return;
	if (c->returns >= RETURNS_TO_TRUST && !c->calls_back) {
		if (set_breakpoint(t, ret))
			skips++;
		else
			fast = false; // no hardware breakpoints here: step everything
		return;
	}
	t->callee = entry;
	t->ret = ret;
	t->call_rsp = rsp;
}

// The tracee is back in PROGRAM's code during a stepped library call: was it the return?
void back_in_text(struct tracee *t, uint64_t rip, uint64_t rsp)
{
	struct callee *c = callee(t->callee);
	if (c && rip == t->ret && rsp == t->call_rsp + 8)
		c->returns++;
	else if (c)
		c->calls_back = true;
	t->callee = 0;
}
