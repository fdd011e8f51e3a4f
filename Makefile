# gpurun — see README.md. `make demo` runs a real container, `make test` runs every test.
CARGO  ?= $(shell command -v cargo || echo $(HOME)/.cargo/bin/cargo)
RUSTC  ?= $(shell command -v rustc || echo $(HOME)/.cargo/bin/rustc)
GPURUN := target/release/gpurun
# gpurun itself is linked statically (static-pie glibc): no ld.so, no libc.so mapped, a
# smaller resident set and a faster start. Its NVML helper, gpurun-nvml, stays dynamic.
HOST   := $(shell $(RUSTC) -vV 2>/dev/null | sed -n 's/^host: //p')
STATIC := target/$(HOST)/release/gpurun
APT_PACKAGES := busybox-static uidmap golang-github-containers-common libcap2-bin gcc umoci skopeo debootstrap docker-registry libssl-dev pkg-config python3

.PHONY: all build deps bundle demo test unit integration vmtest lint bench clean build-test build-bench order install install-bin

all: build

# Debian packages the tests and the demo need (installed only when missing; needs root).
deps:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		DEBIAN_FRONTEND=noninteractive apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$missing; \
	fi

build:
	$(CARGO) build --release --workspace --all-targets
	$(CARGO) build --release -p gpurun --bin gpurun --target $(HOST) \
		--config 'target.$(HOST).rustflags = ["-C", "target-feature=+crt-static"]'
	install -s -m 0755 $(STATIC) $(GPURUN)

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

demo: deps build bundle
	bundles/demo.sh $(GPURUN)

unit:
	$(CARGO) test --release --lib --bins -p gpurun
	link/test-steptrace.sh

# Real containers, as root, against target/release/gpurun (GPURUN_BIN overrides).
integration: deps build bundle
	$(CARGO) test --release -p gpurun-integration

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
	exit $$rc

test: deps build lint unit demo integration build-test vmtest

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --release --workspace --all-targets -- -D warnings

# gpurun vs crun vs runc, side by side (hyperfine); writes bench/results.md. See bench/README.md.
bench: deps build bundle
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
