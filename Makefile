# rill - top-level entry points (see README.md).
#   make        build (release-ish, build/)
#   make run    install missing packages, build, run `rill bench`
#   make check  install missing packages, build with ASan+UBSan+LSan, run
#               every test; ends with "N passed, N failed[, N skipped]"
#   make check-vm  the same, but only the guest tests (tests/vm/: QEMU
#               guests with a real AF_VSOCK; same kind of last line)
#   make format reformat the sources with clang-format

BUILD       ?= build
CHECK_BUILD ?= build-check
JOBS        ?= $(shell nproc)
# Where install-deps.sh unpacks the guest tests' kernel, and where they
# look for it (tests/vm/README.md).
RILL_VM_KERNEL_DIR ?= $(abspath $(BUILD))/vm-kernel
export RILL_VM_KERNEL_DIR

.PHONY: all deps build run check check-vm format format-check clean fuzz

all: build

deps:
	@./scripts/install-deps.sh

$(BUILD)/build.ninja:
	meson setup "$(BUILD)" --buildtype=release -Db_ndebug=true

build: deps $(BUILD)/build.ninja
	ninja -C "$(BUILD)"

run: build
	"$(BUILD)/rill" bench

$(CHECK_BUILD)/build.ninja:
	CC=clang meson setup "$(CHECK_BUILD)" --buildtype=debug \
	  -Db_sanitize=address,undefined -Db_lundef=false \
	  -Dc_args=-fsanitize=fuzzer-no-link

check: deps build $(CHECK_BUILD)/build.ninja
	ninja -C "$(CHECK_BUILD)"
	python3 tests/run.py --build "$(CHECK_BUILD)" --release-build "$(BUILD)" -j $(JOBS)

check-vm: deps build $(CHECK_BUILD)/build.ninja
	ninja -C "$(CHECK_BUILD)"
	python3 tests/run.py --build "$(CHECK_BUILD)" --release-build "$(BUILD)" -j $(JOBS) --suite vm

format:
	clang-format-14 -i $$(git ls-files '*.c' '*.h' | grep -v '^third_party/')

format-check:
	@clang-format-14 --dry-run --Werror $$(git ls-files '*.c' '*.h' | grep -v '^third_party/')

clean:
	rm -rf "$(BUILD)" "$(CHECK_BUILD)"

# libFuzzer binaries of every fuzz target, in build-fuzz/fuzz/.
FUZZ_BUILD ?= build-fuzz
fuzz: deps
	[ -f $(FUZZ_BUILD)/build.ninja ] || CC=clang meson setup $(FUZZ_BUILD) \
	  --buildtype=debugoptimized -Dfuzzing=true \
	  -Db_sanitize=address,undefined -Db_lundef=false \
	  -Dc_args=-fsanitize=fuzzer-no-link
	ninja -C $(FUZZ_BUILD)
