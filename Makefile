# pyexecd: the commands users look for first. Each target does the set-up it needs
# (scripts/setup.sh is idempotent and quick once done), so on a fresh Debian 12 machine
# `make run` and `make test` are enough.

BUILD ?= build
# release (default), dev (-Werror) or asan (AddressSanitizer + UBSan)
CONFIG ?= release
ARGS ?=

.PHONY: all setup setup-sdk setup-llm build run test test-llm bench clean

all: build

setup:
	./scripts/setup.sh

# The pinned Google Gen AI SDKs the tests drive (Python, Node with @google/genai, Go).
setup-sdk:
	./scripts/setup-sdk.sh

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
test: build setup-sdk
	cd $(BUILD) && ctest --output-on-failure -LE llm $(if $(TESTS),-R $(TESTS),)

# The openai model against a real local model (llama-cpp-python with SmolLM2-135M).
test-llm: build setup-llm
	cd $(BUILD) && ctest --output-on-failure -L llm

# Load test and peers (cold process, Jupyter kernel, --pool 0): bench/README.md. Under ten
# minutes; ARGS=--quick for a smoke run.
bench: build
	./bench/setup_bench.sh
	python3 bench/bench.py $(ARGS)

clean:
	rm -rf $(BUILD)
