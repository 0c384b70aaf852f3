#!/usr/bin/env bash
# Fuzzes every target (or those named) for a while with libFuzzer, each starting from its
# corpus fuzz/corpus/<target>/, and exits nonzero if any crashed.
#
#   fuzz/run.sh [-t SECONDS] [-j JOBS] [--keep-going] [--merge] [TARGET...]
#
#   -t SECONDS    per target (default $FUZZ_SECONDS, else 60)
#   -j JOBS       targets fuzzed at once (default 1)
#   --keep-going  libFuzzer's fork mode (-fork=1 -ignore_crashes=1 ...): a target goes on
#                 after a crash, so one run can find several bugs of a target
#   --merge       afterwards, add to fuzz/corpus/<target>/ the inputs that reach coverage
#                 the corpus does not (libFuzzer -merge=1; they are named by their SHA-1)
#
# Builds (once) build-fuzz/: clang, PYEXECD_BUILD=asan (AddressSanitizer and UBSan) and
# -DPYEXECD_FUZZ=ON; BUILD_FUZZ=DIR picks another directory. Runs under nice (NICE=10).
# Crashes, timeouts and leaks go to fuzz/crashes/<target>/ (git-ignored); each one found
# should become a regression seed fuzz/corpus/<target>/crash-<what> (fuzz/README.md).
# Inputs found that add coverage accumulate in build-fuzz/fuzz-work/<target>/ and seed
# the next run. Logs: build-fuzz/fuzz-logs/<target>.log.
#
# Regression seeds (crash-*) are left out of the starting corpus: libFuzzer stops at the
# first input that crashes, and a known bug would end every run at once. `ctest -L fuzz`
# replays them. PYEXECD_FUZZ_IGNORE=id,id turns known property failures into no-ops
# (fuzz/fuzz_util.h), to fuzz past a bug that is reported and not yet fixed.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
FUZZ="$ROOT/fuzz"
BUILD=${BUILD_FUZZ:-$ROOT/build-fuzz}
SECONDS_EACH=${FUZZ_SECONDS:-60}
JOBS=1
KEEP_GOING=0
MERGE=0
NICE=${NICE:-10}

ALL_TARGETS=(wire_parse_execute wire_parse_empty gemini_parse_request gemini_parse_script_line
             base64 utf8 policy_parse worker_report interpreter_info
             openai_parse_reply openai_call_code gemini_encode_response wire_encode_error)

usage() { sed -n '2,27p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }

TARGETS=()
while [ $# -gt 0 ]; do
    case "$1" in
        -t) SECONDS_EACH=$2; shift 2 ;;
        -j) JOBS=$2; shift 2 ;;
        --keep-going) KEEP_GOING=1; shift ;;
        --merge) MERGE=1; shift ;;
        -h|--help) usage ;;
        -*) echo "run.sh: unknown option $1" >&2; usage ;;
        *) TARGETS+=("$1"); shift ;;
    esac
done
[ ${#TARGETS[@]} -gt 0 ] || TARGETS=("${ALL_TARGETS[@]}")
for t in "${TARGETS[@]}"; do
    [ -f "$FUZZ/fuzz_$t.c" ] || { echo "run.sh: no target $t (fuzz/fuzz_$t.c)" >&2; exit 2; }
done

# Per target: its dictionaries and the largest input worth trying.
dicts_of() {
    case "$1" in
        wire_parse_execute|wire_parse_empty) echo "json wire" ;;
        gemini_parse_request|gemini_parse_script_line) echo "json gemini" ;;
        openai_parse_reply|openai_call_code) echo "json openai" ;;
        policy_parse) echo "policy" ;;
        worker_report|interpreter_info) echo "ipc" ;;
        utf8|gemini_encode_response|wire_encode_error) echo "json" ;;
        *) echo "" ;;
    esac
}
max_len_of() {
    case "$1" in
        base64|utf8|wire_parse_empty|openai_call_code) echo 4096 ;;
        *) echo 16384 ;;
    esac
}

command -v clang >/dev/null || {
    echo "run.sh: clang is missing (Debian: apt-get install -y clang libclang-rt-14-dev)" >&2
    exit 2
}

# The build: configured once, brought up to date every run.
if [ ! -f "$BUILD/CMakeCache.txt" ]; then
    # clang -Wformat=2 also warns about vsnprintf in the printf-like helpers and about an
    # empty format in a unit test, which gcc does not: warnings there, not errors.
    cmake -S "$ROOT" -B "$BUILD" -DCMAKE_C_COMPILER=clang -DPYEXECD_BUILD=asan \
        -DPYEXECD_FUZZ=ON \
        -DCMAKE_C_FLAGS="-Wno-error=format-nonliteral -Wno-error=format-zero-length" \
        >/dev/null
fi
nice -n "$NICE" cmake --build "$BUILD" --target fuzz_all -j"$(nproc)" >/dev/null

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}
mkdir -p "$BUILD/fuzz-logs" "$BUILD/fuzz-work" "$FUZZ/crashes"

count_artifacts() {
    find "$1" -maxdepth 1 -type f \( -name 'crash-*' -o -name 'leak-*' -o -name 'timeout-*' \
        -o -name 'oom-*' \) | wc -l
}

fuzz_one() {
    local t=$1
    local bin="$BUILD/fuzz/fuzz_$t" log="$BUILD/fuzz-logs/$t.log"
    local work="$BUILD/fuzz-work/$t" crashes="$FUZZ/crashes/$t"
    local seeds dict
    seeds=$(mktemp -d)
    dict=$(mktemp)
    mkdir -p "$work" "$crashes"
    # The corpus without its regression inputs (see above).
    find "$FUZZ/corpus/$t" -maxdepth 1 -type f ! -name 'crash-*' -exec cp {} "$seeds/" \;
    for d in $(dicts_of "$t"); do cat "$FUZZ/dict/$d.dict" >> "$dict"; done
    local args=(-max_total_time="$SECONDS_EACH" -timeout=25 -rss_limit_mb=2560
                -max_len="$(max_len_of "$t")" -print_final_stats=1
                -artifact_prefix="$crashes/")
    [ -s "$dict" ] && args+=(-dict="$dict")
    [ "$KEEP_GOING" = 1 ] && args+=(-fork=1 -ignore_crashes=1 -ignore_timeouts=1
                                     -ignore_ooms=1)
    local before after rc=0
    before=$(count_artifacts "$crashes")
    (cd "$crashes" && nice -n "$NICE" "$bin" "${args[@]}" "$work" "$seeds") >"$log" 2>&1 \
        || rc=$?
    after=$(count_artifacts "$crashes")
    if [ "$MERGE" = 1 ]; then
        nice -n "$NICE" "$bin" -merge=1 -max_len="$(max_len_of "$t")" \
            "$FUZZ/corpus/$t" "$work" >>"$log" 2>&1 || true
    fi
    rm -rf "$seeds" "$dict"
    # The last status line libFuzzer printed: #runs ... cov: ft: corp: exec/s:
    local stat
    stat=$(grep -aE '^#[0-9]+.*(cov|ft): ' "$log" | tail -1 || true)
    local runs cov ft corp eps
    runs=$(sed -nE 's/^#([0-9]+).*/\1/p' <<<"$stat")
    cov=$(sed -nE 's/.*cov: ([0-9]+).*/\1/p' <<<"$stat")
    ft=$(sed -nE 's/.* ft: ([0-9]+).*/\1/p' <<<"$stat")
    corp=$(sed -nE 's/.* corp: ([0-9]+\/[0-9]+[a-zA-Z]*).*/\1/p' <<<"$stat")
    eps=$(sed -nE 's/.* exec\/s: ([0-9]+).*/\1/p' <<<"$stat")
    local result=ok
    if [ "$rc" != 0 ] || [ "$after" -gt "$before" ]; then
        result="FAILED (exit $rc; $((after - before)) new in fuzz/crashes/$t/; see $log)"
    fi
    printf '%-26s %5ss %10s runs %7s exec/s  cov %5s  ft %6s  corp %-12s %s\n' "$t" \
        "$SECONDS_EACH" "${runs:-?}" "${eps:-?}" "${cov:-?}" "${ft:-?}" "${corp:-?}" \
        "$result" | tee "$BUILD/fuzz-logs/$t.summary"
    [ "$result" = ok ]
}

echo "fuzzing ${#TARGETS[@]} target(s), ${SECONDS_EACH}s each, $JOBS at a time (logs in $BUILD/fuzz-logs/)"
failed=0
running=0
for t in "${TARGETS[@]}"; do
    fuzz_one "$t" &
    running=$((running + 1))
    if [ "$running" -ge "$JOBS" ]; then
        wait -n || failed=1
        running=$((running - 1))
    fi
done
while [ "$running" -gt 0 ]; do
    wait -n || failed=1
    running=$((running - 1))
done
if [ "$failed" != 0 ]; then
    echo "run.sh: at least one target crashed or failed a property: fuzz/crashes/ holds the inputs" >&2
    exit 1
fi
