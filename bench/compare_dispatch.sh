#!/usr/bin/env bash
# Dispatch cost, ours beside the Python peer, measured one after the other on this machine.
#
#   bench/compare_dispatch.sh            # full run: peer N=200,000, criterion defaults in the bench
#   QUICK=1 bench/compare_dispatch.sh    # quick check: peer N=20,000, criterion 1 s warm-up, 3 s measuring
#
# Environment:
#   PEERS_DIR       the peer benchmark folder (default: <repo>/../shared/peers; a folder holding
#                   peers/ is accepted too)
#   PEER_N          timed peer dispatches per scenario (default 200000; 20000 with QUICK=1)
#   PEER_WARMUP     peer warm-up dispatches (default 20000; 2000 with QUICK=1)
#   PEER_SCENARIOS  default a_3recv_log_info,b_1recv_log_info; add d_3recv_log_disabled,d_1recv_log_disabled
#                   to also set our send_robust_log_off group beside the peer with logging disabled
#   CRITERION_ARGS  extra arguments for criterion (replace QUICK's), e.g. "--measurement-time 10"
#   SKIP_PEER=1     reuse the peer figures of the last run (bench/results/last-peer.json.tmp)
#   WAIT_QUIET=600  first wait (up to 600 s) for a 5 s window with the machine under 10% busy
#
# Prints dispatches/s for the peer and for us (log at INFO, at DEBUG, and off) with the ratios,
# and writes the same to bench/results/dispatch-<UTC date and time>[-quick].json.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"

peers="${PEERS_DIR:-$(dirname "$repo")/shared/peers}"
if [[ ! -f "$peers/bench_django_signals.py" && -f "$peers/peers/bench_django_signals.py" ]]; then
    peers="$peers/peers"
fi
if [[ ! -f "$peers/bench_django_signals.py" ]]; then
    echo "error: no bench_django_signals.py in $peers; set PEERS_DIR to the peer benchmark folder" >&2
    exit 1
fi

quick="${QUICK:-0}"
if [[ "$quick" == 1 ]]; then
    peer_n="${PEER_N:-20000}"
    peer_warmup="${PEER_WARMUP:-2000}"
    read -r -a crit_args <<<"${CRITERION_ARGS:---warm-up-time 1 --measurement-time 3}"
    suffix="-quick"
else
    peer_n="${PEER_N:-200000}"
    peer_warmup="${PEER_WARMUP:-20000}"
    read -r -a crit_args <<<"${CRITERION_ARGS:-}"
    suffix=""
fi
peer_scenarios="${PEER_SCENARIOS:-a_3recv_log_info,b_1recv_log_info}"

venv="$repo/bench/.venv"
if ! "$venv/bin/python" -c 'import django' 2>/dev/null; then
    echo "==> creating $venv from $peers/requirements.txt" >&2
    python3 -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --upgrade pip
    "$venv/bin/python" -m pip install --quiet -r "$peers/requirements.txt"
fi

results="$repo/bench/results"
mkdir -p "$results"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

loadavg() { cut -d' ' -f1-3 /proc/loadavg; }
# "busy idle" jiffies of the whole machine, to report how busy it was during each phase.
cpu_jiffies() { awk '/^cpu /{print $2+$3+$4+$7+$8+$9, $5+$6}' /proc/stat; }
busy_pct() { # busy_pct "<before>" "<after>"
    local b0 i0 b1 i1
    read -r b0 i0 <<<"$1"
    read -r b1 i1 <<<"$2"
    awk -v b="$((b1 - b0))" -v i="$((i1 - i0))" 'BEGIN { printf "%.0f", (b + i) ? 100 * b / (b + i) : 0 }'
}
# WAIT_QUIET=<seconds>: wait up to that long for a 5-second window in which the machine is less
# than 10% busy, so that other work does not take cores from the measurement.
if [[ -n "${WAIT_QUIET:-}" ]]; then
    deadline=$(($(date +%s) + WAIT_QUIET))
    while :; do
        j0="$(cpu_jiffies)"; sleep 5; pct="$(busy_pct "$j0" "$(cpu_jiffies)")"
        ((pct < 10)) && { echo "==> machine quiet (${pct}% busy)" >&2; break; }
        (($(date +%s) >= deadline)) && { echo "==> still ${pct}% busy after ${WAIT_QUIET}s; measuring anyway" >&2; break; }
    done
fi
load_before="$(loadavg)"

# 1. The peer.
if [[ "${SKIP_PEER:-0}" == 1 && -f "$results/last-peer.json.tmp" ]]; then
    echo "==> peer: reusing $results/last-peer.json.tmp" >&2
    cp "$results/last-peer.json.tmp" "$work/peer.json"
else
    echo "==> peer: $peers/bench_django_signals.py -n $peer_n --warmup $peer_warmup --scenarios $peer_scenarios" >&2
    j0="$(cpu_jiffies)"
    "$venv/bin/python" "$peers/bench_django_signals.py" -n "$peer_n" --warmup "$peer_warmup" \
        --scenarios "$peer_scenarios" >"$work/peer.out"
    tail -n 1 "$work/peer.out" >"$work/peer.json"
    peer_busy="$(busy_pct "$j0" "$(cpu_jiffies)")"
    python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); d["machine_busy_pct"]=int(sys.argv[2]); json.dump(d,open(sys.argv[1],"w"))' \
        "$work/peer.json" "$peer_busy"
    cp "$work/peer.json" "$results/last-peer.json.tmp"
fi
load_mid="$(loadavg)"

# 2. Ours: build first, so that the busy figure covers the measurement only. Estimates older than
# this run are refused below.
cargo bench -p coordinator --bench dispatch --no-run >&2
started="$(date +%s)"
echo "==> ours: cargo bench -p coordinator --bench dispatch -- ${crit_args[*]}" >&2
j0="$(cpu_jiffies)"
cargo bench -p coordinator --bench dispatch -- "${crit_args[@]}" >&2
ours_busy="$(busy_pct "$j0" "$(cpu_jiffies)")"
load_after="$(loadavg)"

target_dir="${CARGO_TARGET_DIR:-$repo/target}"
[[ "$target_dir" = /* ]] || target_dir="$repo/$target_dir"
criterion_dir="${CRITERION_HOME:-$target_dir/criterion}"

export QUICK_MODE="$quick" PEER_N_USED="$peer_n" PEER_WARMUP_USED="$peer_warmup" \
    CRIT_ARGS_USED="${crit_args[*]}" LOAD_BEFORE="$load_before" LOAD_MID="$load_mid" \
    LOAD_AFTER="$load_after" OURS_BUSY="$ours_busy" STARTED="$started" CRITERION_DIR="$criterion_dir" \
    RUSTC_VERSION="$(rustc --version)" GIT_COMMIT="${GIT_COMMIT:-$(git -C "$repo" describe --always --dirty 2>/dev/null || echo unknown)}"
out="$results/dispatch-$(date -u +%Y-%m-%dT%H%MZ)$suffix.json"

python3 - "$work/peer.json" "$out" <<'PY'
import json, os, platform, sys, time

peer_path, out_path = sys.argv[1], sys.argv[2]
peer = json.load(open(peer_path))
crit = os.environ["CRITERION_DIR"]
started = int(os.environ["STARTED"])

def ours(group, bench):
    path = os.path.join(crit, group, bench, "new", "estimates.json")
    if not os.path.exists(path) or os.path.getmtime(path) < started:
        sys.exit(f"error: {path} is missing or older than this run; did the bench run?")
    e = json.load(open(path))
    mean = e["mean"]["point_estimate"]
    return {
        "mean_ns": round(mean, 1),
        "mean_ci95_ns": [round(e["mean"]["confidence_interval"]["lower_bound"], 1),
                         round(e["mean"]["confidence_interval"]["upper_bound"], 1)],
        "median_ns": round(e["median"]["point_estimate"], 1),
        "dispatches_per_s": round(1e9 / mean, 1),
    }

shapes = [
    ("1_handler", "1 handler (succeeds)", "b_1recv_log_info", "d_1recv_log_disabled"),
    ("3_handlers_1_fails", "3 handlers (1 fails)", "a_3recv_log_info", "d_3recv_log_disabled"),
]
groups = {"info": "send_robust", "debug": "send_robust_debug", "off": "send_robust_log_off"}
measured = {f"{g}/{b}": ours(g, b) for b, *_ in shapes for g in groups.values()}

def cpu():
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"

rows = []
for bench, label, peer_info, peer_off in shapes:
    p = peer["scenarios"].get(peer_info)
    if p is None:
        sys.exit(f"error: the peer did not run {peer_info}")
    row = {"shape": label, "peer_scenario": peer_info, "peer_dispatches_per_s": p["dispatches_per_s"],
           "peer_mean_us": p["mean_us"]}
    for level, group in groups.items():
        o = measured[f"{group}/{bench}"]
        row[f"ours_{level}_dispatches_per_s"] = o["dispatches_per_s"]
        row[f"ours_{level}_mean_ns"] = o["mean_ns"]
        if level != "off":
            row[f"ratio_{level}_vs_peer_info"] = round(o["dispatches_per_s"] / p["dispatches_per_s"], 1)
    d = peer["scenarios"].get(peer_off)
    if d is not None:
        row["peer_log_disabled_scenario"] = peer_off
        row["peer_log_disabled_dispatches_per_s"] = d["dispatches_per_s"]
        row["ratio_off_vs_peer_disabled"] = round(
            measured[f"send_robust_log_off/{bench}"]["dispatches_per_s"] / d["dispatches_per_s"], 1)
    rows.append(row)

result = {
    "bench": "dispatch_vs_django_signals",
    "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    "quick": os.environ["QUICK_MODE"] == "1",
    "machine": {"cpu": cpu(), "cpus": os.cpu_count(), "kernel": platform.release(),
                "loadavg_before_peer": os.environ["LOAD_BEFORE"],
                "loadavg_after_peer": os.environ["LOAD_MID"],
                "loadavg_after_ours": os.environ["LOAD_AFTER"],
                "busy_pct_during_peer": peer.get("machine_busy_pct"),
                "busy_pct_during_ours": int(os.environ["OURS_BUSY"]),
                "note": "busy_pct is the whole machine's CPU use; one single-threaded benchmark "
                        "on an otherwise idle 2-core machine shows about 50"},
    "ours": {"commit": os.environ["GIT_COMMIT"], "rustc": os.environ["RUSTC_VERSION"],
             "command": "cargo bench -p coordinator --bench dispatch -- " + os.environ["CRIT_ARGS_USED"],
             "benches": measured},
    "peer": dict(peer, command=f"bench_django_signals.py -n {os.environ['PEER_N_USED']} "
                               f"--warmup {os.environ['PEER_WARMUP_USED']}"),
    "comparison": rows,
}
os.makedirs(os.path.dirname(out_path), exist_ok=True)
with open(out_path, "w") as f:
    json.dump(result, f, indent=1)
    f.write("\n")

def n(x):
    return f"{x:,.0f}"

print()
print(f"dispatches/s on {cpu()} ({os.cpu_count()} cpus), {result['date_utc']}"
      f"{' [QUICK]' if result['quick'] else ''}; ratio = ours / peer")
print(f"{'shape':22} {'peer INFO':>11} | {'ours INFO':>11} {'ratio':>7} | {'ours DEBUG':>11} {'ratio':>7}"
      f" | {'ours log off':>12}")
for r in rows:
    print(f"{r['shape']:22} {n(r['peer_dispatches_per_s']):>11} | "
          f"{n(r['ours_info_dispatches_per_s']):>11} {r['ratio_info_vs_peer_info']:>6}x | "
          f"{n(r['ours_debug_dispatches_per_s']):>11} {r['ratio_debug_vs_peer_info']:>6}x | "
          f"{n(r['ours_off_dispatches_per_s']):>12}")
if any("peer_log_disabled_dispatches_per_s" in r for r in rows):
    print()
    print("with logging off on both sides (peer logging.disable(CRITICAL), ours subscriber at OFF):")
    for r in rows:
        if "peer_log_disabled_dispatches_per_s" in r:
            print(f"{r['shape']:22} peer {n(r['peer_log_disabled_dispatches_per_s']):>9}/s | ours "
                  f"{n(r['ours_off_dispatches_per_s']):>11}/s | ratio {r['ratio_off_vs_peer_disabled']}x")
print()
print("mean per dispatch: " + "; ".join(
    f"{r['shape']}: peer {r['peer_mean_us']} us, ours INFO {r['ours_info_mean_ns']:.0f} ns, "
    f"DEBUG {r['ours_debug_mean_ns']:.0f} ns, off {r['ours_off_mean_ns']:.0f} ns" for r in rows))
print(f"machine CPU busy: {peer.get('machine_busy_pct')}% during the peer, {os.environ['OURS_BUSY']}% during ours "
      f"(about {100 // (os.cpu_count() or 1)}% = nothing else running); load average before "
      f"{os.environ['LOAD_BEFORE']}, after peer {os.environ['LOAD_MID']}, after ours {os.environ['LOAD_AFTER']}")
print(f"written to {out_path}")
PY
