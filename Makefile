# pyexecd: the commands users look for first. Each target does the set-up it needs
# (scripts/setup.sh is idempotent and quick once done), so on a fresh Debian 12 machine
# `make run` and `make test` are enough.

BUILD ?= build
# release (default), dev (-Werror) or asan (AddressSanitizer + UBSan)
CONFIG ?= release
ARGS ?=

.PHONY: all setup build run test bench clean

all: build

setup:
	./scripts/setup.sh

build: setup
	cmake -S . -B $(BUILD) -DPYEXECD_BUILD=$(CONFIG) >/dev/null
	cmake --build $(BUILD) -j$$(nproc)

# Serves on 127.0.0.1:8080 until interrupted.
run: build
	./$(BUILD)/pyexecd $(ARGS)

# The whole suite: C unit tests, then integration tests against the real server.
test: build
	cd $(BUILD) && ctest --output-on-failure $(if $(TESTS),-R $(TESTS),)

# Load test and peers (cold process, Jupyter kernel, --pool 0): bench/README.md. Under ten
# minutes; ARGS=--quick for a smoke run.
bench: build
	./bench/setup_bench.sh
	python3 bench/bench.py $(ARGS)

clean:
	rm -rf $(BUILD)
