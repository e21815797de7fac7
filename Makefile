# Switchyard front door. `make` builds, `make test` runs every test (plain and sanitizer builds,
# against real services started by scripts/testenv), `make demo` runs the embedded demo,
# `make bench [BENCH=name]` prints benchmark figures.
BUILD      ?= build
ASAN_BUILD ?= build-asan
GENERATOR  := $(shell command -v ninja >/dev/null 2>&1 && echo Ninja || echo "Unix Makefiles")
BENCH      ?=

.PHONY: all deps build asan test unit demo bench clean format

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

# Unit tests only (no services): quick loop while editing.
unit: build
	ctest --test-dir $(BUILD) -L unit --output-on-failure

test: build asan
	scripts/run-tests $(BUILD) $(ASAN_BUILD)

demo: build
	scripts/demo $(BUILD)

bench: build
	scripts/bench $(BUILD) $(BENCH)

format:
	clang-format -i core/*.[ch] producer/*.[ch] router/*.[ch] worker/*.[ch] tests/unit/*.[ch] tests/integration/*.[ch] bench/*.c

clean:
	rm -rf $(BUILD) $(ASAN_BUILD)
