#!/bin/sh
# Instructions per token verification, counted by valgrind (callgrind): unlike timings this does
# not depend on what else runs on the machine. Runs the same workload twice (generate N tokens,
# verify 0 or N of them) and prints the difference per token, for the optimised verifier and the
# naive baseline. Needs valgrind. Usage: bench/verify_instructions.sh [N]   (default 400; ~3 minutes)
set -eu
cd "$(dirname "$0")/.."
n="${1:-400}"
py=$(uv run --frozen python -c 'import sys; print(sys.executable)')
count() {
    valgrind --tool=callgrind --callgrind-out-file=/dev/null "$py" bench/bench_verify.py \
        --tokens "$n" --verify-only "$1" $2 2>&1 | sed -n 's/.*Collected : //p'
}
for variant in optimised naive; do
    flag=""
    [ "$variant" = naive ] && flag="--naive"
    base=$(count 0 "$flag")
    full=$(count "$n" "$flag")
    echo "$variant: $(( (full - base) / n )) instructions per verification ($n distinct botocore tokens, half with session tokens)"
done
