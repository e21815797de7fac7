# Switchyard front door. `make` builds, `make test` runs every test (plain and sanitizer builds,
# against real services started by scripts/testenv, plus a short run of every fuzz target),
# `make demo` runs the embedded demo, `make bench [BENCH=name]` prints benchmark figures,
# `make fuzz [FUZZ=name] [FUZZ_SECONDS=n]` fuzzes for longer.
BUILD      ?= build
ASAN_BUILD ?= build-asan
FUZZ_BUILD ?= build-fuzz
GENERATOR  := $(shell command -v ninja >/dev/null 2>&1 && echo Ninja || echo "Unix Makefiles")
BENCH      ?=
FUZZ       ?=
FUZZ_SECONDS ?= 300
FUZZ_CC    ?= clang-14

.PHONY: all deps build asan fuzz-build fuzz test unit demo bench clean format

all: build

deps:
	@scripts/deps

$(BUILD)/CMakeCache.txt: | deps
	cmake -S . -B $(BUILD) -G "$(GENERATOR)" -DCMAKE_BUILD_TYPE=RelWithDebInfo

build: deps $(BUILD)/CMakeCache.txt
	cmake --build $(BUILD)
	@echo "binaries: $(BUILD)/bin/switchyard $(BUILD)/bin/switchyard-router $(BUILD)/bin/switchyard-worker"

$(ASAN_BUILD)/CMakeCache.txt: | deps
	cmake -S . -B $(ASAN_BUILD) -G "$(GENERATOR)" -DCMAKE_BUILD_TYPE=Debug -DSY_SANITIZE=ON

asan: deps $(ASAN_BUILD)/CMakeCache.txt
	cmake --build $(ASAN_BUILD)

# The libFuzzer build: clang, the core library and tests/fuzz only (see docs/testing.md).
$(FUZZ_BUILD)/CMakeCache.txt:
	@scripts/deps fuzz
	cmake -S . -B $(FUZZ_BUILD) -G "$(GENERATOR)" -DCMAKE_C_COMPILER=$(FUZZ_CC) -DSY_FUZZ=ON

fuzz-build: $(FUZZ_BUILD)/CMakeCache.txt
	@scripts/deps fuzz
	cmake --build $(FUZZ_BUILD)

# Longer runs: every target (or FUZZ=name) for FUZZ_SECONDS each; the corpus grows in
# $(FUZZ_BUILD)/fuzz-work/<name>/corpus from run to run.
fuzz: fuzz-build
	@rm -f $(FUZZ_BUILD)/fuzz-work/summary.log
	SY_FUZZ_SECONDS=$(FUZZ_SECONDS) ctest --test-dir $(FUZZ_BUILD) -L fuzz --output-on-failure \
	  --timeout $$(( $(FUZZ_SECONDS) + 300 )) $(if $(FUZZ),-R '^fuzz\.$(FUZZ)$$'); \
	  rc=$$?; cat $(FUZZ_BUILD)/fuzz-work/summary.log 2>/dev/null; exit $$rc

test: build asan fuzz-build
	scripts/run-tests $(BUILD) $(ASAN_BUILD) $(FUZZ_BUILD)

# The unit tests alone: no services needed.
unit: build
	ctest --test-dir $(BUILD) -L unit --output-on-failure

demo: build
	scripts/demo $(BUILD)

bench: build
	scripts/bench $(BUILD) $(BENCH)

format:
	clang-format -i core/*.[ch] producer/*.[ch] router/*.[ch] worker/*.[ch] tests/unit/*.[ch] tests/integration/*.[ch] tests/fuzz/*.[ch] bench/*.c

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(FUZZ_BUILD)
