#!/usr/bin/env bash
# Start-up validation cost of a generated configuration (N handlers over N/10 signals, 10 handlers
# per signal), for N = 100, 1,000 and 10,000, and how it scales.
#
#   bench/compare_wiring.sh
#
# Environment:
#   CRITERION_ARGS  extra arguments for criterion (the bench sets its own sample size and times)
#   LIMIT_MS        the start-up budget for N = 10,000 (default 100)
#
# Prints ms per N for parse + validate + build and for build alone, the cost per handler, and the
# ratio of the per-handler cost at 10,000 to that at 100 (1.0 = linear scaling). Writes the same
# to bench/results/wiring-<UTC date and time>.json and exits 1 if N = 10,000 is over LIMIT_MS.
# There is no peer figure: the peer connects its receivers with connect_receivers() at start-up
# and checks nothing.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"

read -r -a crit_args <<<"${CRITERION_ARGS:-}"
results="$repo/bench/results"
mkdir -p "$results"

cpu_jiffies() { awk '/^cpu /{print $2+$3+$4+$7+$8+$9, $5+$6}' /proc/stat; }

cargo bench -p coordinator --bench wiring --no-run >&2
load_before="$(cut -d' ' -f1-3 /proc/loadavg)"
started="$(date +%s)"
echo "==> cargo bench -p coordinator --bench wiring -- ${crit_args[*]}" >&2
read -r b0 i0 <<<"$(cpu_jiffies)"
cargo bench -p coordinator --bench wiring -- "${crit_args[@]}" >&2
read -r b1 i1 <<<"$(cpu_jiffies)"
busy="$(awk -v b="$((b1 - b0))" -v i="$((i1 - i0))" 'BEGIN { printf "%.0f", (b + i) ? 100 * b / (b + i) : 0 }')"
load_after="$(cut -d' ' -f1-3 /proc/loadavg)"

target_dir="${CARGO_TARGET_DIR:-$repo/target}"
[[ "$target_dir" = /* ]] || target_dir="$repo/$target_dir"

export CRITERION_DIR="${CRITERION_HOME:-$target_dir/criterion}" STARTED="$started" \
    LOAD_BEFORE="$load_before" LOAD_AFTER="$load_after" BUSY="$busy" LIMIT_MS="${LIMIT_MS:-100}" \
    RUSTC_VERSION="$(rustc --version)" GIT_COMMIT="${GIT_COMMIT:-$(git -C "$repo" describe --always --dirty 2>/dev/null || echo unknown)}"
out="$results/wiring-$(date -u +%Y-%m-%dT%H%MZ).json"

python3 - "$out" <<'PY'
import json, os, platform, sys, time

out_path = sys.argv[1]
crit = os.environ["CRITERION_DIR"]
started = int(os.environ["STARTED"])
sizes = [100, 1_000, 10_000]
kinds = {"parse_validate_build": "parse + validate + build", "build_from_parsed": "build from parsed Config"}

def estimate(kind, n):
    path = os.path.join(crit, "wiring", kind, str(n), "new", "estimates.json")
    if not os.path.exists(path) or os.path.getmtime(path) < started:
        sys.exit(f"error: {path} is missing or older than this run; did the bench run?")
    e = json.load(open(path))
    mean = e["mean"]["point_estimate"]
    return {"mean_ms": round(mean / 1e6, 4),
            "mean_ci95_ms": [round(e["mean"]["confidence_interval"]["lower_bound"] / 1e6, 4),
                             round(e["mean"]["confidence_interval"]["upper_bound"] / 1e6, 4)],
            "per_handler_us": round(mean / 1e3 / n, 3)}

measured = {kind: {str(n): estimate(kind, n) for n in sizes} for kind in kinds}
scaling = {kind: round(m["10000"]["per_handler_us"] / m["100"]["per_handler_us"], 2)
           for kind, m in measured.items()}
limit = float(os.environ["LIMIT_MS"])
headline = measured["parse_validate_build"]["10000"]["mean_ms"]

def cpu():
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"

result = {
    "bench": "wiring_validation",
    "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    "machine": {"cpu": cpu(), "cpus": os.cpu_count(), "kernel": platform.release(),
                "loadavg_before": os.environ["LOAD_BEFORE"], "loadavg_after": os.environ["LOAD_AFTER"],
                "busy_pct_during_bench": int(os.environ["BUSY"])},
    "commit": os.environ["GIT_COMMIT"], "rustc": os.environ["RUSTC_VERSION"],
    "shape": "N handlers over N/10 signals, 10 handlers per signal, one extension",
    "measured": measured,
    "per_handler_cost_ratio_10000_vs_100": scaling,
    "headline_10000_handlers_ms": headline, "limit_ms": limit, "within_limit": headline < limit,
}
with open(out_path, "w") as f:
    json.dump(result, f, indent=1)
    f.write("\n")

print()
print(f"start-up wiring on {cpu()} ({os.cpu_count()} cpus), {result['date_utc']}")
print(f"{'':26}" + "".join(f"{f'N={n:,}':>22}" for n in sizes) + f"{'per-handler 10k/100':>22}")
for kind, label in kinds.items():
    cells = "".join(f"{m['mean_ms']:>9.3f} ms {m['per_handler_us']:>6.3f} us/h"
                    for m in (measured[kind][str(n)] for n in sizes))
    print(f"{label:26}{cells}{scaling[kind]:>21}x")
verdict = "within" if headline < limit else "OVER"
print(f"headline: 1,000 signals / 10,000 handlers parse + validate + build = {headline:.2f} ms "
      f"({verdict} the {limit:.0f} ms budget)")
print(f"machine CPU busy during the bench: {os.environ['BUSY']}% (about {100 // (os.cpu_count() or 1)}% = "
      f"nothing else running); load average before {os.environ['LOAD_BEFORE']}, after {os.environ['LOAD_AFTER']}")
print(f"written to {out_path}")
sys.exit(0 if headline < limit else 1)
PY
