// steptrace: PROGRAM's code (where its executable is mapped, its entry point) and the set of
// its addresses that ran, in first-seen order.
#define _GNU_SOURCE
#include <elf.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/user.h>
#include <unistd.h>

#include "steptrace.h"

// ---- PROGRAM's text: its executable mappings and the load bias (runtime - link-time address).
// fork/clone children share the layout; anything that execs again is detached, so one layout
// serves every tracee.

#define MAX_TEXT 8
static struct {
	uint64_t start, end;
} text[MAX_TEXT];
static int ntext;
static uint64_t bias;
bool layout_ready;
static uint64_t entry;  // runtime address of PROGRAM's entry point
static long entry_word; // the original word at `entry`, under our int3
bool stepping;

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
		if (ph.p_type == PT_LOAD && (ph.p_flags & PF_X) && off >= pg_off &&
		    off < ph.p_offset + ph.p_filesz) {
			*vaddr = (ph.p_vaddr & ~(uint64_t)0xfff) + (off - pg_off);
			found = true;
		}
	}
	fclose(f);
	return found;
}

// Called at PROGRAM's exec stop: find its r-x mappings in /proc/PID/maps.
void load_layout(pid_t pid)
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
		bool same_file =
			(ino == st.st_ino && maj == major(st.st_dev) && min == minor(st.st_dev)) ||
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

// A SIGTRAP from an int3 before `stepping`: if it is ours at the entry point (RIP is just
// past it), put the code back, rewind, and start stepping.
bool entry_breakpoint_hit(pid_t pid)
{
	errno = 0;
	long rip = ptrace(PTRACE_PEEKUSER, pid, offsetof(struct user_regs_struct, rip), 0);
	if (errno || (uint64_t)rip != entry + 1)
		return false;
	if (ptrace(PTRACE_POKETEXT, pid, entry, (void *)entry_word) ||
	    ptrace(PTRACE_POKEUSER, pid, offsetof(struct user_regs_struct, rip), (void *)entry))
		die("removing the entry breakpoint of %d: %s", pid, strerror(errno));
	stepping = true;
	return true;
}

bool in_text(uint64_t addr)
{
	for (int i = 0; i < ntext; i++)
		if (addr >= text[i].start && addr < text[i].end)
			return true;
	return false;
}

// ---- set of seen addresses: open addressing, linear probing; `order` keeps first-seen order.
// 0 marks an empty slot (no instruction lives at link-time address 0).

static uint64_t *slots;
static size_t nslots; // power of two
static uint64_t *order;
size_t nseen;
static size_t order_cap;

static size_t slot_of(uint64_t a)
{
	return hash(a) & (nslots - 1);
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

// Record runtime address `addr` of PROGRAM's code (see in_text) as its link-time address.
void see(uint64_t addr)
{
	uint64_t a = addr - bias;
	if (!nslots)
		set_grow();
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

void write_out(const char *path)
{
	FILE *f = fopen(path, "w");
	if (!f)
		die("open %s: %s", path, strerror(errno));
	for (size_t i = 0; i < nseen; i++)
		fprintf(f, "%zu %llx\n", i, (unsigned long long)order[i]);
	if (fclose(f))
		die("write %s: %s", path, strerror(errno));
}
