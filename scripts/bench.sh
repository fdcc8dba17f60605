#!/usr/bin/env bash
# One command for every performance figure of the gateway (docs/benchmarks.md):
#   1. installs what it needs (Node tools in tools/ for Azurite) and builds the self-host and both bench projects (Release);
#   2. runs the load bench (bench/Melious.LoadBench): scripted upstream + self-host gateway as separate processes,
#      all settings (C=1/32, 0/5 ms, text/tool), start time, count_tokens, 1,000 slow streams, PASS/MISS per target;
#   3. publishes the self-host as Native AOT (scripts/publish-aot.sh) and as the published JIT build
#      (scripts/publish-selfhost.sh: trimmed, ReadyToRun, self-contained; "self-host R2R") and runs the load bench's
#      C=1 and C=32 text settings, start time and slow streams against each, checking that every request was billed
#      and that the build reads its tables (--verify-usage: readiness, model catalog, no storage warnings);
#   4. runs the BenchmarkDotNet micro-benchmarks (bench/Melious.Benchmarks);
#   5. runs the usage writer bench (bench/Melious.WriterBench): events/s into Table Storage, direct and via the queue;
#   6. with --functions: runs the load bench's settings once more through the Functions app (src/Melious.Functions)
#      under the real Azure Functions host (../shared/functions-host/run.sh; same upstream, same requests) and prints
#      its added TTFT and CPU per stream (host + worker) next to the self-host's; one SKIPPED: line without a host;
#   7. with --paced: the paced streaming pass (docs/benchmarks-paced.md): one upstream write+flush per token after a
#      first-token delay, C=1 (5 ms/token), C=64 (10 ms and 0 ms), 1,000 streams at 50 ms/token, each on four paths:
#      direct, nginx (one worker, proxy_buffering off), YARP (bench/Melious.YarpAnchor) and the gateway; the AOT and
#      Functions passes add their gateway rows; --quick runs a tiny paced smoke (C=1, 20 tokens) on every path;
#   8. prints every figure; JSON lines and logs go to artifacts/bench/.
# Figures are printed, never asserted: the exit status is non-zero only if a bench could not run or the AOT or R2R pass
# found a measured request without its usage rows.
#
# Usage: scripts/bench.sh [--quick] [--no-build] [--no-aot] [--no-r2r] [--functions] [--paced] [--paced-only | --load-only | --micro-only | --writer-only | --aot-only | --r2r-only | --functions-only | --pool-only] [-- <extra load-bench options>]
#   --quick       smoke run (~1-2 minutes after the build) that proves the bench works; figures are indicative only
#   --no-build    use the existing Release builds (and existing artifacts/aot and artifacts/selfhost publishes)
#   --no-aot      skip the Native AOT pass
#   --no-r2r      skip the published JIT build's pass (--r2r-only: just that pass)
#   --functions   add the Functions host pass to the load bench (the same settings as the self-host pass; a full run
#                 takes ~10 minutes longer on 2 cores); not part of --quick (see docs/benchmarks.md)
#   --functions-only  just that comparison, short: C=1 and C=32 text through the self-host, then the Functions host
#   --paced       add the paced pass (with nginx and YARP anchors) to the load bench and the AOT pass
#   --paced-only  only the paced pass: self-host JIT (+ anchors), then the AOT and R2R self-hosts; with --functions also the
#                 Functions host; e.g. scripts/bench.sh --no-build --paced-only -- --only paced-c64 --measure-seconds 8
#   --pool-only   just the pool comparison: the self-host in front of a 3-endpoint pool of scripted upstreams against
#                 one endpoint and against the upstream directly (added TTFT p50/p99, CPU per request; load bench --pool)
#   extra options after "--" go to the load bench, e.g. -- --only c32-d0-text --measure-seconds 20
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$MELIOUS_ROOT"

quick=()
build=1
run_load=1
run_micro=1
run_writer=1
run_aot=1
run_r2r=1
run_functions=0
functions_only=0
paced=0
paced_only=0
pool_only=0
extra=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --quick) quick=(--quick) ;;
    --no-build) build=0 ;;
    --no-aot) run_aot=0 ;;
    --no-r2r) run_r2r=0 ;;
    --functions) run_functions=1 ;;
    --functions-only) run_functions=1; functions_only=1; run_micro=0; run_writer=0; run_aot=0; run_r2r=0 ;;
    --paced) paced=1 ;;
    --paced-only) paced=1; paced_only=1; run_micro=0; run_writer=0 ;;
    --load-only) run_micro=0; run_writer=0; run_aot=0; run_r2r=0 ;;
    --pool-only) run_micro=0; run_writer=0; run_aot=0; run_r2r=0; pool_only=1 ;;
    --micro-only) run_load=0; run_writer=0; run_aot=0; run_r2r=0 ;;
    --writer-only) run_load=0; run_micro=0; run_aot=0; run_r2r=0 ;;
    --aot-only) run_load=0; run_micro=0; run_writer=0; run_r2r=0 ;;
    --r2r-only) run_load=0; run_micro=0; run_writer=0; run_aot=0 ;;
    --) shift; extra=("$@"); break ;;
    -h|--help) sed -n '2,36p' "$0"; exit 0 ;;
    *) echo "unknown option: $1 (see --help)" >&2; exit 64 ;;
  esac
  shift
done

out="$MELIOUS_ROOT/artifacts/bench"
mkdir -p "$out"
rm -f "$out/bench.jsonl" "$out/loadbench.log" "$out/micro.log" "$out/writer.log" "$out/aot.log" "$out/functions.log" "$out/paced.json" "$out/aot/paced.json" "$out/r2r.log" "$out/r2r/paced.json"

if [[ $build -eq 1 ]]; then
  ensure_node_tools
  log "Building Release: src/Melious.SelfHost, bench/Melious.LoadBench, bench/Melious.Benchmarks, bench/Melious.WriterBench, bench/Melious.YarpAnchor"
  for project in src/Melious.SelfHost bench/Melious.LoadBench bench/Melious.Benchmarks bench/Melious.WriterBench bench/Melious.YarpAnchor; do
    dotnet build "$project" -c Release -nologo -v quiet -clp:ErrorsOnly
  done
fi

load_args=()
if [[ $pool_only -eq 1 ]]; then
  load_args+=(--pool --launches 1)
fi
if [[ $run_functions -eq 1 ]]; then
  if ! fn_host="$(functions_host_dir)"; then
    echo "SKIPPED: Functions host pass (no Azure Functions host: ${MELIOUS_FUNCTIONS_HOST:-$MELIOUS_ROOT/../shared/functions-host} has no run.sh/build.sh)" | tee "$out/functions.log"
    run_functions=0
    if [[ $functions_only -eq 1 ]]; then run_load=0; fi
  else
    if [[ $build -eq 1 ]]; then
      log "Building Release: src/Melious.Functions; the Functions host (cached: $fn_host/build.sh)"
      dotnet build src/Melious.Functions -c Release -nologo -v quiet -clp:ErrorsOnly
      "$fn_host/build.sh" >/dev/null
    fi
    load_args+=(--functions-host "$fn_host")
    if [[ $functions_only -eq 1 ]]; then
      load_args+=(--only c1-d0-text,c32-d0-text --skip-slow --skip-count-tokens --launches 1)
    fi
  fi
fi

# The paced pass: a tiny smoke in --quick (every path once), the full pass with --paced / --paced-only.
aot_paced=()
if [[ ${#quick[@]} -gt 0 || $paced -eq 1 ]]; then
  load_args+=(--paced)
fi
if [[ $paced -eq 1 ]]; then
  aot_paced=(--paced --paced-anchors none)
fi
if [[ $paced_only -eq 1 ]]; then
  load_args+=(--only paced --skip-slow --skip-count-tokens --launches 1)
fi

status=0
if [[ $run_load -eq 1 ]]; then
  log "Load bench ${quick[*]:-(full: ~15-25 minutes on 2 cores)}"
  if ! dotnet bench/Melious.LoadBench/bin/Release/net10.0/Melious.LoadBench.dll "${quick[@]}" --repo "$MELIOUS_ROOT" --out "$out" "${load_args[@]}" "${extra[@]}" 2>&1 | tee "$out/loadbench.log"; then
    echo "load bench failed (see $out/loadbench.log)" >&2
    status=1
  fi
fi

if [[ $run_aot -eq 1 ]]; then
  aot_exe="$MELIOUS_ROOT/artifacts/aot/Melious.SelfHost"
  if [[ $build -eq 1 || ! -x "$aot_exe" ]]; then
    if ! have_clang; then
      echo "SKIPPED: Native AOT pass (clang, needed to link a Native AOT executable, is not installed)" | tee "$out/aot.log"
      run_aot=0
    elif ! "$MELIOUS_ROOT/scripts/publish-aot.sh" "$MELIOUS_ROOT/artifacts/aot" >/dev/null; then
      echo "Native AOT publish failed" >&2
      status=1
      run_aot=0
    fi
  fi
fi
# A published self-host (an executable) through the load bench's C=1 and C=32 text settings (or the paced pass),
# start time and slow streams, checking that every measured request was billed: run_published NAME DESCRIPTION EXE
run_published() {
  local name="$1" description="$2" exe="$3" args
  log "Load bench against the $description ${quick[*]:-}"
  args=(--only c1-d0-text,c32-d0-text --skip-count-tokens --verify-usage)
  if [[ $paced_only -eq 1 ]]; then args=(--only paced --skip-count-tokens --skip-slow --verify-usage --launches 1); fi
  args+=("${aot_paced[@]}")
  if [[ ${#quick[@]} -eq 0 && $paced_only -eq 0 ]]; then args+=(--launches 3); fi
  if ! dotnet bench/Melious.LoadBench/bin/Release/net10.0/Melious.LoadBench.dll "${quick[@]}" --repo "$MELIOUS_ROOT" --out "$out/$name" \
      --gateway-dll "$exe" "${args[@]}" "${extra[@]}" 2>&1 | tee "$out/$name.log"; then
    echo "load bench against the $description failed (see $out/$name.log)" >&2
    status=1
  fi
}

if [[ $run_aot -eq 1 ]]; then
  run_published aot "Native AOT self-host" "$aot_exe"
fi

# The published JIT build (scripts/publish-selfhost.sh: trimmed, ReadyToRun, self-contained; no clang needed).
if [[ $run_r2r -eq 1 ]]; then
  r2r_exe="$MELIOUS_ROOT/artifacts/selfhost/Melious.SelfHost"
  if [[ $build -eq 1 || ! -x "$r2r_exe" ]] && ! "$MELIOUS_ROOT/scripts/publish-selfhost.sh" "$MELIOUS_ROOT/artifacts/selfhost" >/dev/null; then
    echo "publishing the JIT self-host (scripts/publish-selfhost.sh) failed" >&2
    status=1
    run_r2r=0
  fi
fi
if [[ $run_r2r -eq 1 ]]; then
  run_published r2r "published JIT self-host (trimmed, ReadyToRun)" "$r2r_exe"
fi

if [[ $run_micro -eq 1 ]]; then
  log "Micro-benchmarks (BenchmarkDotNet, in-process toolchain) ${quick[*]:-}"
  if ! dotnet bench/Melious.Benchmarks/bin/Release/net10.0/Melious.Benchmarks.dll "${quick[@]}" --artifacts "$out/bdn" 2>&1 | tee "$out/micro.log"; then
    echo "micro-benchmarks failed (see $out/micro.log)" >&2
    status=1
  fi
fi

if [[ $run_writer -eq 1 ]]; then
  log "Usage writer bench ${quick[*]:-}"
  if ! dotnet bench/Melious.WriterBench/bin/Release/net10.0/Melious.WriterBench.dll "${quick[@]}" --repo "$MELIOUS_ROOT" 2>&1 | tee "$out/writer.log"; then
    echo "writer bench failed (see $out/writer.log)" >&2
    status=1
  fi
fi

# Every figure once more, together, at the end: the load bench's targets and the micro-benchmark summary.
cat "$out"/loadbench.log "$out"/r2r.log "$out"/aot.log "$out"/micro.log "$out"/writer.log 2>/dev/null | sed -n 's/^BENCH_JSON //p' > "$out/bench.jsonl" || true
echo
log "Summary (all figures: $out/bench.jsonl, logs: $out/loadbench.log, $out/r2r.log, $out/aot.log, $out/micro.log, $out/writer.log)"
if [[ -f "$out/loadbench.log" ]]; then
  grep -E '^Start |^  (PASS|MISS|n/a )' "$out/loadbench.log" || true
  sed -n '/^Functions host vs self-host/,/^  (Functions pass took/p' "$out/loadbench.log" | grep -v '^BENCH_JSON' || true
  grep -E '^SKIPPED: Functions' "$out/loadbench.log" || true
fi
if [[ -f "$out/functions.log" ]]; then
  cat "$out/functions.log"
fi
if [[ -f "$out/paced.json" || -f "$out/aot/paced.json" || -f "$out/r2r/paced.json" ]]; then
  # Direct, nginx, YARP and self-host JIT (+ Functions host) from the load bench, self-host R2R and AOT from their passes.
  dotnet bench/Melious.LoadBench/bin/Release/net10.0/Melious.LoadBench.dll paced-summary "$out/paced.json" "$out/r2r/paced.json" "$out/aot/paced.json" || true
fi
if [[ -f "$out/r2r.log" ]]; then
  echo "Published JIT self-host (trimmed, ReadyToRun):"
  grep -E '^Start |^  (PASS|MISS|n/a )|^Usage check' "$out/r2r.log" || true
fi
if [[ -f "$out/aot.log" ]]; then
  echo "Native AOT self-host:"
  grep -E '^SKIPPED|^Start |^  (PASS|MISS|n/a )|^Usage check' "$out/aot.log" || true
fi
if [[ -f "$out/micro.log" ]]; then
  sed -n '/^Micro-benchmarks (mean/,$p' "$out/micro.log" | grep -v '^BENCH_JSON' || true
fi
if [[ -f "$out/writer.log" ]]; then
  sed -n '/^Usage writer throughput/,$p' "$out/writer.log" | grep -v '^BENCH_JSON' || true
fi
echo "bench: $(wc -l < "$out/bench.jsonl" | tr -d ' ') figures recorded, exit status $status"
exit "$status"
