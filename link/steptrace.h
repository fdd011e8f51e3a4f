// steptrace's parts (see steptrace.c): the tracer loop (steptrace.c), PROGRAM's code and the
// addresses seen in it (steptrace-text.c), fast-forwarding library calls (steptrace-fast.c).
#ifndef STEPTRACE_H
#define STEPTRACE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#ifndef __x86_64__
#error "steptrace reads x86_64 registers (RIP, RSP, debug registers)"
#endif

struct tracee {
	pid_t pid;
	bool started;   // its first stop (the auto-attach SIGSTOP) was seen
	bool stop_sent; // we sent SIGSTOP to detach it (after PROGRAM exited)
	// Where the last stop was (to recognise a call out of PROGRAM at the next one).
	bool in_text;
	uint64_t rip, rsp;
	// -f: the library call being stepped (callee 0: none), or being run free (skipping).
	uint64_t callee, ret, call_rsp;
	bool skipping;
};

// steptrace.c
void die(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));
void *xrealloc(void *p, size_t n);

static inline size_t hash(uint64_t a)
{
	return (size_t)((a * 0x9E3779B97F4A7C15ull) >> 32); // Fibonacci hashing: the high bits
}

// steptrace-text.c
extern bool layout_ready; // PROGRAM's exec was seen
extern bool stepping;     // PROGRAM reached its entry point: single-step from now on
extern size_t nseen;      // distinct addresses seen
void load_layout(pid_t pid);
bool entry_breakpoint_hit(pid_t pid);
bool in_text(uint64_t addr);
void see(uint64_t addr);
void write_out(const char *path);

// steptrace-fast.c
extern bool fast; // -f
extern unsigned long long skips;
bool set_breakpoint(struct tracee *t, uint64_t addr);
void left_text(struct tracee *t, uint64_t entry, uint64_t rsp);
void back_in_text(struct tracee *t, uint64_t rip, uint64_t rsp);

#endif
