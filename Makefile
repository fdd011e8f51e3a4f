# gpurun — see README.md. `make demo` runs a real container, `make test` runs every test.
# `make help` lists the targets.
CARGO  ?= $(shell command -v cargo || echo $(HOME)/.cargo/bin/cargo)
RUSTC  ?= $(shell command -v rustc || echo $(HOME)/.cargo/bin/rustc)
GPURUN := target/release/gpurun
# gpurun itself is linked statically (static-pie glibc): no ld.so, no libc.so mapped, a
# smaller resident set and a faster start. Its NVML helper, gpurun-nvml, stays dynamic.
HOST   := $(shell $(RUSTC) -vV 2>/dev/null | sed -n 's/^host: //p')
STATIC := target/$(HOST)/release/gpurun
# What `make demo` needs: busybox for the bundle, a C toolchain and glibc's static libraries
# (libc.a, rcrt1.o) to link gpurun. The tests need the rest.
DEMO_PACKAGES := busybox-static gcc libc6-dev
APT_PACKAGES := $(DEMO_PACKAGES) uidmap golang-github-containers-common libcap2-bin umoci skopeo debootstrap docker-registry libssl-dev pkg-config python3
# Progress lines for a make that is not on a terminal (cargo prints its bar only on a tty).
STEP = @printf '\n==> %s\n' 

.PHONY: all help build build-bin deps deps-demo bundle demo test unit integration vmtest lint bench clean build-test build-bench order install install-bin test-runc

all: build

help:
	@echo 'make demo         build the static gpurun only (about 2 min from clean) and run a busybox container'
	@echo 'make build        every target of the workspace (tests, builder) + the static gpurun in target/release'
	@echo 'make build-bin    only the static gpurun in target/release (what demo builds)'
	@echo 'make test         fmt + clippy, unit, demo, integration, builder, cgroup v2 VM suites'
	@echo 'make unit | integration | build-test | vmtest | lint     one part of make test'
	@echo 'make test-runc    the integration suite against /usr/sbin/runc (not in make test)'
	@echo 'make bench        gpurun vs crun vs runc (bench/README.md); make build-bench: the builder'
	@echo 'make install      PREFIX=/usr/local: gpurun, gpurun-nvml, nvidia-container-runtime-hook link'
	@echo 'make order        re-trace the hot functions for the link layout (link/README.md)'
	@echo 'make deps         the Debian packages the tests need (deps-demo: only what the demo needs)'

# $(call apt_install,PACKAGES): the Debian packages missing among PACKAGES (needs root).
define apt_install
	@missing=""; for p in $(1); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		DEBIAN_FRONTEND=noninteractive apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$missing; \
	fi
endef

deps:
	$(call apt_install,$(APT_PACKAGES))

deps-demo:
	$(call apt_install,$(DEMO_PACKAGES))

# The static gpurun alone: static-pie glibc, with --target so crt-static reaches gpurun's own
# crates but not the proc-macros and build scripts (which must stay dynamic). README "Building".
build-bin: deps-demo
	$(STEP) "building gpurun (release: fat LTO, 1 codegen unit; about 2 minutes from clean on 2 cores)"
	$(CARGO) build --release -p gpurun --bin gpurun --target $(HOST) \
		--config 'target.$(HOST).rustflags = ["-C", "target-feature=+crt-static"]'
	install -s -m 0755 $(STATIC) $(GPURUN)
	@echo "$(GPURUN): static gpurun ready"

# Everything (tests, builder, gpurun-nvml), then the static gpurun over the dynamic one that the
# workspace build leaves in target/release (so build-bin must come second).
build:
	$(STEP) "building the workspace, all targets (tests, builder, gpurun-nvml)"
	$(CARGO) build --release --workspace --all-targets
	$(MAKE) --no-print-directory build-bin

# gpurun, its NVML helper, and the name Docker's `--gpus` looks for on dockerd's PATH
# (gpurun answers to it: README "Docker"). An existing nvidia-container-runtime-hook that is
# not a link (the NVIDIA toolkit's) is left alone.
PREFIX ?= /usr/local
BINDIR := $(DESTDIR)$(PREFIX)/bin
install: build
	$(MAKE) install-bin

install-bin:
	install -d $(BINDIR)
	install -m 0755 $(GPURUN) target/release/gpurun-nvml $(BINDIR)/
	@hook=$(BINDIR)/nvidia-container-runtime-hook; \
	if [ -e $$hook ] && [ ! -L $$hook ]; then echo "$$hook exists and is not ours: left alone"; \
	else ln -sfn gpurun $$hook && echo "$$hook -> gpurun"; fi

bundle: deps
	bundles/build.sh

# Builds only what it runs: the static gpurun (no tests, no builder, no gpurun-nvml).
demo: build-bin
	$(STEP) "busybox bundle + the OCI lifecycle (bundles/demo.sh)"
	bundles/demo.sh $(GPURUN)

unit:
	$(CARGO) test --release --lib --bins -p gpurun
	link/test-steptrace.sh
	link/check-order.sh $(STATIC)

# Real containers, as root, against target/release/gpurun (GPURUN_BIN overrides).
integration: deps build bundle
	rm -f target/skips.log
	$(CARGO) test --release -p gpurun-integration; rc=$$?; integration/skips-summary.sh; exit $$rc

# The integration suite against runc (README: every test passes with it, gpurun-only checks
# marked); not part of `make test`. Engines and systemd tests have their own runc runs.
test-runc: deps build bundle
	rm -f target/skips-runc.log; rc=0; \
	for t in $$(cd integration/tests && ls *.rs | sed 's/\.rs$$//' | grep -vxE 'engines|systemd.*|gpu_docker'); do \
		GPURUN_BIN=/usr/sbin/runc GPURUN_SKIP_LOG=$(CURDIR)/target/skips-runc.log \
		$(CARGO) test --release -p gpurun-integration --test $$t || rc=1; \
	done; integration/skips-summary.sh target/skips-runc.log; exit $$rc

# gpurun-build: unit tests and end-to-end builds run by target/release/gpurun (root).
build-test: deps build bundle
	$(CARGO) test --release -p gpurun-build

# The same integration suite on a pure cgroup v2 kernel (User-Mode Linux or QEMU, integration/vm/),
# then the --systemd-cgroup tests in short guests with systemd as PID 1: pure cgroup v2 with the
# engines, then hybrid cgroups (QEMU; under UML that test says it skips). All three always run.
vmtest: deps build bundle
	rc=0; integration/vm/run-suite.sh || rc=1; \
	VM_SYSTEMD=1 integration/vm/run-suite.sh || rc=1; \
	VM_SYSTEMD=1 VM_TESTS='systemd systemd_hosts' VMRUN_KERNEL_ARGS=systemd.unified_cgroup_hierarchy=0 \
		VM_RESULTS=$(CURDIR)/target/vm-results-systemd-hybrid integration/vm/run-suite.sh || rc=1; \
	VM_LSM=apparmor integration/vm/run-suite.sh || rc=1; \
	VM_LSM=selinux integration/vm/run-suite.sh || rc=1; \
	echo "skips of the whole run (host and VMs):"; integration/skips-summary.sh; \
	exit $$rc

test: deps build lint unit demo integration build-test vmtest

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --release --workspace --all-targets -- -D warnings

# gpurun vs crun vs runc, side by side (hyperfine); writes bench/results.md. See bench/README.md.
bench: deps build bundle
	link/check-order.sh $(STATIC)
	bench/run.sh $(GPURUN)

# Re-trace which functions the common commands run (link/README.md); the next build lays them out.
order: deps build
	link/gen-order.sh $(STATIC) link/hot-symbols.txt

# gpurun-build: cold build and no-change rebuild of a 5-step Dockerfile; writes bench/build-results.md.
build-bench: deps build
	bench/build.sh

clean:
	$(CARGO) clean
	rm -rf bundles/busybox
