# ixr: thin wrapper around CMake. Both entry points install what is missing
# (compiler, cmake, pkg-config, Lua 5.4, libuv, yajl, cmocka), configure,
# build, and then run.
BUILD      ?= build
BUILD_SAN  ?= build-san
BUILD_FUZZ ?= build-fuzz
FUZZ_SECONDS ?= 60
JOBS       ?= $(shell nproc 2>/dev/null || echo 2)
CMAKE_ARGS ?=

.PHONY: all deps build run test test-fast test-san fuzz check bench clean

all: build

deps:
	@sh scripts/install-deps.sh

$(BUILD)/CMakeCache.txt: | deps
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo $(CMAKE_ARGS)

build: deps $(BUILD)/CMakeCache.txt
	cmake --build $(BUILD) -j $(JOBS)

# Runs ixr on the bundled strategies: events on standard input, output lines
# on standard output (try pasting a line from examples/events.ndjson).
# The set-up's messages go to standard error, so that `make run < in > out`
# leaves only ixr's output lines in out.
run:
	@$(MAKE) --no-print-directory build >&2
	@echo "ixr: reading NDJSON events on standard input (Ctrl-D ends)" >&2
	@./$(BUILD)/ixr run --handlers handlers

# Every test, in a normal build and again under ASan+UBSan, then the
# libFuzzer targets for FUZZ_SECONDS each (after replaying the regressions).
test: test-fast test-san fuzz

test-fast: build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

test-san: deps
	cmake -S . -B $(BUILD_SAN) -DCMAKE_BUILD_TYPE=Debug -DIXR_SANITIZE=ON $(CMAKE_ARGS)
	cmake --build $(BUILD_SAN) -j $(JOBS)
	cd $(BUILD_SAN) && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  ctest --output-on-failure -j $(JOBS)

# libFuzzer (tests/fuzz), in its own clang build: replays the saved
# regressions, then runs each target for FUZZ_SECONDS seconds.
fuzz:
	@sh scripts/install-deps.sh --fuzz
	BUILD_FUZZ=$(BUILD_FUZZ) sh tests/fuzz/run.sh $(FUZZ_SECONDS)

# Benchmarks (not part of make test): docs/performance.md.
bench: deps $(BUILD)/CMakeCache.txt
	sh bench/run.sh $(BUILD)

check: build
	./$(BUILD)/ixr check --handlers handlers

clean:
	rm -rf $(BUILD) $(BUILD_SAN) $(BUILD_FUZZ)
