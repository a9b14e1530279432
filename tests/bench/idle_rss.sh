#!/usr/bin/env bash
# idle_rss.sh: resident memory of an idle agent serving the bundled scripts.
# Starts `$HA_BIN --listen 127.0.0.1:<port>` (no --scripts: the bundled checks run),
# waits 2 s, sends a few GET /healthz, waits 1 s, then reads VmRSS and VmHWM from
# /proc/PID/status. The reference server, treated the same way, is shown for scale.
# Target: agent VmRSS <= 5 MiB.
set -u -o pipefail
. "$(dirname "$0")/lib.sh"
bench_require_tools curl

bench_port; ref_port=$PORT
bench_start_ref "$ref_port" || bench_finish
bench_port; ha_port=$PORT
bench_start_agent "$ha_port" --listen "127.0.0.1:$ha_port" || bench_finish

sleep 2
codes='' note=''
for _ in 1 2 3 4 5; do
    code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "http://127.0.0.1:$ha_port/healthz")
    codes="$codes $code"
    curl -s -o /dev/null --max-time 2 "http://127.0.0.1:$ref_port/healthz"
done
bench_log "agent /healthz answered:$codes"
for code in $codes; do
    case $code in
    2??) ;;
    503) note="note: /healthz is 503 (a bundled check is DOWN on this host); memory is still measured" ;;
    *) bench_fail "agent /healthz answered '$code' (want 2xx, or 503 for a DOWN check)" ;;
    esac
done
[ -z "$note" ] || bench_log "$note"
sleep 1

bench_rss "$HA_PID"; ha_rss=$RSS_KIB ha_hwm=$HWM_KIB ha_anon=$ANON_KIB ha_file=$FILE_KIB ha_pss=$PSS_KIB
bench_rss "$REF_PID"; ref_rss=$RSS_KIB ref_hwm=$HWM_KIB ref_anon=$ANON_KIB ref_file=$FILE_KIB ref_pss=$PSS_KIB
bench_log "agent VmRSS $ha_rss KiB, VmHWM $ha_hwm KiB; reference VmRSS $ref_rss KiB, VmHWM $ref_hwm KiB"

bench_table_begin "idle memory (bundled scripts, after 3 s and 5 x GET /healthz)"
bench_row "VmRSS" MiB "$(bench_mib "$ha_rss")" "$(bench_mib "$ref_rss")" le 5
bench_row "VmHWM (peak RSS)" MiB "$(bench_mib "$ha_hwm")" "$(bench_mib "$ref_hwm")" info
bench_row "VmRSS" KiB "$ha_rss" "$ref_rss" info
bench_row "VmHWM (peak RSS)" KiB "$ha_hwm" "$ref_hwm" info
bench_row "  RssAnon (heap, stacks)" KiB "${ha_anon:-0}" "${ref_anon:-0}" info
bench_row "  RssFile (binary, libs)" KiB "${ha_file:-0}" "${ref_file:-0}" info
bench_row "Pss (shared pages split)" KiB "${ha_pss:-0}" "${ref_pss:-0}" info

bench_stop "$HA_PID" agent "$REF_PID" ref
bench_finish
