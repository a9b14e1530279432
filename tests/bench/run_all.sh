#!/usr/bin/env bash
# shellcheck disable=SC2059  # $fmt: one format for header and rows
# run_all.sh: runs every benchmark in order, then prints all their rows in one table.
# Exit status: 0 when every benchmark ran (a missed target reads MISSED, it is not a
# failure); 1 when any of them was broken (a server did not start or died, non-2xx
# answers, failed h2load requests).
set -u -o pipefail
dir=$(cd "$(dirname "$0")" && pwd)
summary=$(mktemp "${TMPDIR:-/tmp}/ha-bench-summary.XXXXXX")
trap 'rm -f "$summary"' EXIT
export BENCH_SUMMARY=$summary

broken=()
for bench in cached_readyz idle_rss p99_sleepers conn_close idle scale metrics_page grpc_check grpc_watch_fanout \
    groups_readyz groups_aggregate; do
    printf '\n######## %s\n' "$bench"
    start=$SECONDS
    if ! "$dir/$bench.sh"; then
        broken+=("$bench")
    fi
    printf '# %s took %d s\n' "$bench" $((SECONDS - start))
done

printf '\n######## summary (HA_BIN=%s)\n' "${HA_BIN:-build/healthagent}"
fmt='%-14s | %-28s | %14s | %14s | %6s | %-14s | %s\n'
printf "$fmt" benchmark metric healthagent reference ratio target verdict
while IFS=$'\t' read -r bench metric agent ref ratio target verdict; do
    printf "$fmt" "$bench" "$metric" "$agent" "$ref" "$ratio" "$target" "$verdict"
done <"$summary"
missed=$(awk -F'\t' '$7 == "MISSED"' "$summary" | wc -l)

if [ "${#broken[@]}" -gt 0 ]; then
    echo "RESULT: BROKEN: ${broken[*]}"
    exit 1
fi
echo "RESULT: all benchmarks ran; $missed target(s) MISSED"
exit 0
