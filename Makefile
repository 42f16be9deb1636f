# Top-level entry points. The kernel is built and run by the host tool mkimage (mkimage/).
#   make deps        install what the build and tests need (x86_64-unknown-none target, QEMU,
#                    curl and Chromium for the network tests)
#   make build       build the kernel ELF
#   make run         boot it under QEMU; serial console on this terminal (CMDLINE="selftest" ...)
#   make demo        boot, like make run, the demo disk target/demo.img: its /etc/rc starts three
#                    containers web1..web3 running httpd, published on ports 8081..8083 (open
#                    http://127.0.0.1:8081/ .. 8083 on the host); the shell stays usable (ns, ps)
#   make test        lint, then all host tests (unit tests and QEMU integration tests)
#   make fuzz        a longer pass of the system-call fuzzer in the guest (SEED=N, default 1;
#                    CALLS=N, default 20000; JOBS=N batches at once, default 1;
#                    SKIP=elf,rename,... leaves groups out); exits
#                    non-zero on a kernel panic, a hang or an odd result
#   make bench       benchmarks: boot time (RUNS=N boots, default 5), the file system against
#                    Linux's ext2 in the same QEMU machine, system calls (and a container's spawn+exit+wait), bench-ns and
#                    bench-net, as tables
#   make bench-net   the network designs compared under wrk: ours async and sleep (net=sleep),
#                    the xv6+lwIP peer, Linux with busybox httpd and nginx (with and without
#                    keep-alive); tables, and SVG charts in target/bench/ (about 5 minutes;
#                    SHARED_BENCH=DIR names the peer scripts' folder; a missing script
#                    skips its system: mkimage/src/bench_net.rs)
#   make bench-ns    httpd against the Linux peer, and three containers' httpd at once against
#                    one root httpd and three peers (LINUX_PEER=SCRIPT: mkimage/src/bench_ns.rs)
#   make qemu-gdb    boot stopped, waiting for gdb on 127.0.0.1:1234
#   make image       build the file system image target/fs.img with the user programs in /bin
#                    (mkimage image; check it with mkimage fsck target/fs.img)
#   make clean       remove target/

KERNEL_TARGET := x86_64-unknown-none
MKIMAGE := cargo run -q -p mkimage --release --
CMDLINE ?=
RUNS ?= 5
SEED ?= 1
CALLS ?= 20000
JOBS ?= 1
SKIP ?=

.PHONY: all deps deps-bench build run demo test lint fuzz bench bench-boot bench-fs bench-sys bench-net bench-ns profile qemu-gdb image clean

all: build

deps:
	@command -v rustup >/dev/null 2>&1 || { echo "error: rustup not found; the kernel needs the $(KERNEL_TARGET) target" >&2; exit 1; }
	@rustup target list --installed | grep -qx '$(KERNEL_TARGET)' || rustup target add $(KERNEL_TARGET)
	@missing=""; \
	command -v qemu-system-x86_64 >/dev/null 2>&1 || missing="$$missing qemu-system-x86"; \
	command -v curl >/dev/null 2>&1 || missing="$$missing curl"; \
	command -v chromium >/dev/null 2>&1 || missing="$$missing chromium"; \
	if [ -n "$$missing" ]; then \
	    if [ "$$(id -u)" = 0 ]; then \
	        apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $$missing; \
	    else \
	        echo "error: missing Debian packages:$$missing (as root: apt-get install$$missing)" >&2; \
	        exit 1; \
	    fi; \
	fi

build: deps
	$(MKIMAGE) build

# The disk persists between runs, like a real one: built when missing or when the user
# programs changed (`make image` always rebuilds it from scratch).
USER_SOURCES := $(shell find user -name '*.rs' -o -name '*.toml' -o -name '*.ld')
target/fs.img: $(USER_SOURCES)
	$(MKIMAGE) image

run: deps target/fs.img
	$(MKIMAGE) run --cmdline '$(CMDLINE)'

# The demo's disk persists like fs.img (edit its /etc/rc in the guest); rebuilt when the user
# programs or the demo's files (mkimage/src/image.rs) change.
target/demo.img: $(USER_SOURCES) mkimage/src/image.rs
	$(MKIMAGE) image --demo --out target/demo.img

demo: deps target/demo.img
	$(MKIMAGE) run --disk target/demo.img --cmdline '$(CMDLINE)'

lint: deps
	cargo fmt --all --check
	cargo clippy --all-targets -- -D warnings
	cd kernel && cargo clippy -p kernel --target $(KERNEL_TARGET) --target-dir ../target/kernel -- -D warnings
	cd user && cargo clippy --release -p user --bins --target $(KERNEL_TARGET) --target-dir ../target/user -- -D warnings

test: lint
	cargo test --no-fail-fast

fuzz: deps
	$(MKIMAGE) fuzz --seed $(SEED) --calls $(CALLS) --jobs $(JOBS) $(if $(SKIP),--skip $(SKIP))

bench: bench-boot bench-fs bench-sys bench-ns bench-net

# The Linux peer of bench-sys and bench-fs: Debian's kernel and a static busybox (and
# mke2fs for bench-fs's ext2 image).
deps-bench: deps
	@if ! ls /boot/vmlinuz-* >/dev/null 2>&1 || [ ! -x /bin/busybox ] || ! command -v wrk >/dev/null 2>&1 || ! command -v mke2fs >/dev/null 2>&1; then \
	    if [ "$$(id -u)" = 0 ]; then \
	        apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends linux-image-amd64 busybox-static wrk cpio e2fsprogs; \
	    else \
	        echo "error: bench-sys needs Debian's linux-image-amd64 and busybox-static (as root: apt-get install linux-image-amd64 busybox-static)" >&2; \
	        exit 1; \
	    fi; \
	fi

# Without the peer (not root, nothing installed) our column is still measured and the table
# says the Linux one was skipped.
bench-sys: deps
	@$(MAKE) --no-print-directory deps-bench || echo "bench-sys: the Linux peer is missing; its column will be skipped" >&2
	$(MKIMAGE) bench-sys

bench-net: deps-bench
	$(MKIMAGE) bench-net

bench-ns: deps-bench
	$(MKIMAGE) bench-ns

# Where the guest's CPU goes while httpd serves (the kernel's sampling profiler, prof=HZ).
profile: deps-bench
	$(MKIMAGE) profile

bench-boot: deps
	$(MKIMAGE) bench-boot --runs $(RUNS)

# Like bench-sys: without the Linux side our column is still measured.
bench-fs: deps
	@$(MAKE) --no-print-directory deps-bench || echo "bench-fs: the Linux side is missing; its column will be skipped" >&2
	$(MKIMAGE) bench-fs

qemu-gdb: deps
	$(MKIMAGE) run --gdb --cmdline '$(CMDLINE)'

image:
	$(MKIMAGE) image

clean:
	cargo clean
