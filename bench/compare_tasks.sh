#!/usr/bin/env bash
# Durable tasks enqueued from a signal handler and run by workers, ours beside Celery + Redis,
# measured one after the other on this machine.
#
#   bench/compare_tasks.sh            # full run: N=20,000 tasks, 3 runs of each, medians
#   QUICK=1 bench/compare_tasks.sh    # quick check: N=5,000, 1 run of each
#
# What runs (each figure is the median of RUNS separate processes, by the peers'
# median_of_runs.py):
#   1. the peer: bench_celery_tasks.py --pool prefork --use-running-redis (Redis on
#      127.0.0.1:6379 is started if it is down);
#   2. ours, end to end, like the peer: task_bench e2e (a signal whose handler enqueues a no-op
#      task, sent N times one after the other and each timed, an in-process worker running the
#      tasks; end to end = first dispatch until the N-th task is `succeeded` in storage), on
#      SQLite and on PostgreSQL (and on PostgreSQL with synchronous_commit=off, see below);
#   3. ours, scaling: task_bench drain on PostgreSQL (N tasks enqueued first, then K worker
#      processes started at once; drain = until none is pending), K in WORKER_COUNTS.
#
# Environment:
#   PEERS_DIR        the peer benchmark folder (default: <repo>/../shared/peers)
#   N, WARMUP, RUNS  tasks per run (20000; 5000 with QUICK=1), warm-up tasks (500), runs (3; 1)
#   WORKER_COUNTS    worker processes of the drain runs (default "1 2 4")
#   DRAIN_N, DRAIN_RUNS  tasks and runs of each drain (default N and RUNS)
#   CONCURRENCY      each worker's [worker] concurrency (default 8, the configuration default)
#   POLL_INTERVAL    each worker's [worker] poll_interval (default 100ms, the default)
#   PG_ADMIN_URL     PostgreSQL to create the benchmark database in
#                    (default postgres://postgres@127.0.0.1:5432/postgres)
#   PG_DATABASE      the benchmark's database, emptied by each run (default cc_task_bench)
#   ASYNC_COMMIT=0   skip the PostgreSQL end-to-end run with synchronous_commit=off
#   SKIP_PEER=1      reuse the peer figures of the last run (bench/results/last-celery-peer.json.tmp)
#   RESUME=1         keep the phases an interrupted run finished (bench/results/tasks-work.tmp/)
#                    and run only the others
#   WAIT_QUIET=600   first wait (up to 600 s) for a 5 s window with the machine under 10% busy
#
# Prints the figures with the ratios to Celery and writes them to
# bench/results/tasks-<date>[-quick].json.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"

peers="${PEERS_DIR:-$(dirname "$repo")/shared/peers}"
if [[ ! -f "$peers/bench_celery_tasks.py" && -f "$peers/peers/bench_celery_tasks.py" ]]; then
    peers="$peers/peers"
fi
if [[ ! -f "$peers/bench_celery_tasks.py" ]]; then
    echo "error: no bench_celery_tasks.py in $peers; set PEERS_DIR to the peer benchmark folder" >&2
    exit 1
fi

quick="${QUICK:-0}"
if [[ "$quick" == 1 ]]; then
    n="${N:-5000}"; runs="${RUNS:-1}"; suffix="-quick"
else
    n="${N:-20000}"; runs="${RUNS:-3}"; suffix=""
fi
warmup="${WARMUP:-500}"
worker_counts="${WORKER_COUNTS:-1 2 4}"
drain_n="${DRAIN_N:-$n}"
drain_runs="${DRAIN_RUNS:-$runs}"
concurrency="${CONCURRENCY:-8}"
poll_interval="${POLL_INTERVAL:-100ms}"
pg_admin="${PG_ADMIN_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
pg_db="${PG_DATABASE:-cc_task_bench}"
pg_url="${pg_admin%/*}/$pg_db"

venv="$repo/bench/.venv"
if ! "$venv/bin/python" -c 'import celery, redis, django' 2>/dev/null; then
    echo "==> installing the peer's packages into $venv from $peers/requirements.txt" >&2
    [[ -x "$venv/bin/python" ]] || python3 -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --upgrade pip
    "$venv/bin/python" -m pip install --quiet -r "$peers/requirements.txt"
fi

# Redis for the peer (--use-running-redis): the service machines run one on 127.0.0.1:6379.
if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
    echo "==> starting redis-server on 127.0.0.1:6379" >&2
    mkdir -p /var/lib/redis /var/log/redis
    redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
        --dir /var/lib/redis --logfile /var/log/redis/ci.log
    for _ in $(seq 50); do redis-cli -h 127.0.0.1 ping >/dev/null 2>&1 && break; sleep 0.1; done
fi

# PostgreSQL: the benchmark's own database, with the server's durability settings unless a run
# says otherwise (each run empties it).
have_pg=1
if ! command -v psql >/dev/null || ! psql "$pg_admin" -qAtc 'select 1' >/dev/null 2>&1; then
    echo "==> warning: PostgreSQL at $pg_admin is unreachable (or psql is missing): skipping its runs" >&2
    have_pg=0
else
    if [[ "$(psql "$pg_admin" -qAtc "select 1 from pg_database where datname = '$pg_db'")" != 1 ]]; then
        psql "$pg_admin" -qc "CREATE DATABASE $pg_db" >/dev/null
    fi
    psql "$pg_admin" -qc "ALTER DATABASE $pg_db RESET synchronous_commit" >/dev/null
fi

results="$repo/bench/results"
mkdir -p "$results"
# Each phase's figures are kept here until the run is complete, so that RESUME=1 can finish an
# interrupted run.
work="$results/tasks-work.tmp"
[[ "${RESUME:-0}" == 1 ]] || rm -rf "$work"
mkdir -p "$work"
cleanup() {
    if [[ "$have_pg" == 1 ]]; then
        psql "$pg_admin" -qc "ALTER DATABASE $pg_db RESET synchronous_commit" >/dev/null 2>&1 || true
    fi
}
trap cleanup EXIT

loadavg() { cut -d' ' -f1-3 /proc/loadavg; }
cpu_jiffies() { awk '/^cpu /{print $2+$3+$4+$7+$8+$9, $5+$6}' /proc/stat; }
busy_pct() { # busy_pct "<before>" "<after>"
    local b0 i0 b1 i1
    read -r b0 i0 <<<"$1"
    read -r b1 i1 <<<"$2"
    awk -v b="$((b1 - b0))" -v i="$((i1 - i0))" 'BEGIN { printf "%.0f", (b + i) ? 100 * b / (b + i) : 0 }'
}
if [[ -n "${WAIT_QUIET:-}" ]]; then
    deadline=$(($(date +%s) + WAIT_QUIET))
    while :; do
        j0="$(cpu_jiffies)"; sleep 5; pct="$(busy_pct "$j0" "$(cpu_jiffies)")"
        ((pct < 10)) && { echo "==> machine quiet (${pct}% busy)" >&2; break; }
        (($(date +%s) >= deadline)) && { echo "==> still ${pct}% busy after ${WAIT_QUIET}s; measuring anyway" >&2; break; }
    done
fi

echo "==> building the benchmark (cargo build --release -p coordinator-server --example task_bench)" >&2
cargo build --release -q -p coordinator-server --example task_bench >&2
target_dir="${CARGO_TARGET_DIR:-$repo/target}"
[[ "$target_dir" = /* ]] || target_dir="$repo/$target_dir"
bench="$target_dir/release/examples/task_bench"
common=(--concurrency "$concurrency" --poll-interval "$poll_interval" --timeout 1800)

# phase NAME RUNS COMMAND...: runs COMMAND RUNS times through median_of_runs.py into
# $work/NAME.json, with the load average before and the machine's busy share during it.
phase() {
    local name="$1" times="$2"; shift 2
    if [[ "${RESUME:-0}" == 1 && -f "$work/$name.json" ]]; then
        echo "==> $name: kept from the interrupted run" >&2
        return
    fi
    echo "==> $name: $* (load average $(loadavg))" >&2
    local load j0
    load="$(loadavg)"; j0="$(cpu_jiffies)"
    "$venv/bin/python" "$peers/median_of_runs.py" --runs "$times" --out "$work/$name.json.part" -- "$@" >/dev/null
    mv "$work/$name.json.part" "$work/$name.json"
    python3 - "$work/$name.json" "$load" "$(busy_pct "$j0" "$(cpu_jiffies)")" <<'PY'
import json, sys
path, load, busy = sys.argv[1], sys.argv[2], int(sys.argv[3])
d = json.load(open(path))
d["loadavg_before"], d["machine_busy_pct"] = load, busy
json.dump(d, open(path, "w"), indent=1)
PY
}

# 1. The peer.
if [[ "${SKIP_PEER:-0}" == 1 && -f "$results/last-celery-peer.json.tmp" ]]; then
    echo "==> peer: reusing $results/last-celery-peer.json.tmp" >&2
    cp "$results/last-celery-peer.json.tmp" "$work/peer.json"
else
    phase peer "$runs" "$venv/bin/python" "$peers/bench_celery_tasks.py" --pool prefork --use-running-redis \
        -n "$n" --warmup "$warmup"
    cp "$work/peer.json" "$results/last-celery-peer.json.tmp"
fi

# 2. Ours, end to end.
mkdir -p "$work/sqlite"
phase sqlite_e2e "$runs" "$bench" e2e --url "sqlite://$work/sqlite/coordinator.db" -n "$n" --warmup "$warmup" "${common[@]}"
ran=(sqlite_e2e)
if [[ "$have_pg" == 1 ]]; then
    phase postgres_e2e "$runs" "$bench" e2e --url "$pg_url" -n "$n" --warmup "$warmup" "${common[@]}"
    ran+=(postgres_e2e)
    if [[ "${ASYNC_COMMIT:-1}" == 1 ]]; then
        psql "$pg_admin" -qc "ALTER DATABASE $pg_db SET synchronous_commit = off" >/dev/null
        phase postgres_async_commit_e2e "$runs" "$bench" e2e --url "$pg_url" -n "$n" --warmup "$warmup" "${common[@]}"
        psql "$pg_admin" -qc "ALTER DATABASE $pg_db RESET synchronous_commit" >/dev/null
        ran+=(postgres_async_commit_e2e)
    fi
    # 3. Scaling: K worker processes drain N tasks.
    for k in $worker_counts; do
        phase "postgres_drain_$k" "$drain_runs" "$bench" drain --url "$pg_url" -n "$drain_n" --workers "$k" "${common[@]}"
        ran+=("postgres_drain_$k")
    done
fi

out="$results/tasks-$(date -u +%Y-%m-%dT%H%MZ)$suffix.json"
export N_USED="$n" WARMUP_USED="$warmup" RUNS_USED="$runs" QUICK_MODE="$quick" \
    DRAIN_N_USED="$drain_n" DRAIN_RUNS_USED="$drain_runs" \
    RUSTC_VERSION="$(rustc --version)" PG_VERSION="$( [[ "$have_pg" == 1 ]] && psql "$pg_admin" -qAtc 'show server_version' || echo none)" \
    GIT_COMMIT="${GIT_COMMIT:-$(git -C "$repo" describe --always --dirty 2>/dev/null || echo unknown)}"
python3 - "$work" "$out" "${ran[@]}" <<'PY'
import json, os, platform, sys, time

work, out_path, names = sys.argv[1], sys.argv[2], sys.argv[3:]
load = lambda name: json.load(open(os.path.join(work, f"{name}.json")))
peer = load("peer")
ours = {name: load(name) for name in names}
p = peer["median"]

def cpu():
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"

labels = {
    "sqlite_e2e": "SQLite (WAL, synchronous=NORMAL)",
    "postgres_e2e": "PostgreSQL (synchronous_commit=on: each commit waits for the WAL flush)",
    "postgres_async_commit_e2e": "PostgreSQL (synchronous_commit=off for the benchmark database)",
}
rows = [{
    "system": "Celery + Redis (peer, prefork, concurrency 2)",
    "end_to_end_tasks_per_s": p["end_to_end_tasks_per_s"],
    "enqueue_per_s": p["enqueue_per_s"],
    "enqueue_p50_us": p["enqueue_p50_us"],
    "enqueue_p99_us": p["enqueue_p99_us"],
    "drain_after_enqueue_s": p["drain_after_enqueue_s"],
}]
for name, label in labels.items():
    if name not in ours:
        continue
    m = ours[name]["median"]
    rows.append({
        "system": f"ours, {label}",
        "end_to_end_tasks_per_s": m["end_to_end_tasks_per_s"],
        "enqueue_per_s": m["enqueue_per_s"],
        "enqueue_p50_us": m["enqueue_p50_us"],
        "enqueue_p99_us": m["enqueue_p99_us"],
        "drain_after_enqueue_s": m["drain_after_enqueue_s"],
        "ratio_end_to_end_vs_celery": round(m["end_to_end_tasks_per_s"] / p["end_to_end_tasks_per_s"], 2),
        "ratio_enqueue_p99_vs_celery": round(m["enqueue_p99_us"] / p["enqueue_p99_us"], 2),
    })
scaling = []
base = None
for name in names:
    if not name.startswith("postgres_drain_"):
        continue
    m = ours[name]["median"]
    base = base or m["drain_tasks_per_s"]
    scaling.append({
        "worker_processes": m["worker_processes"],
        "drain_tasks_per_s": m["drain_tasks_per_s"],
        "drain_s": m["drain_s"],
        "speedup_vs_1": round(m["drain_tasks_per_s"] / base, 2),
        "ratio_vs_celery_end_to_end": round(m["drain_tasks_per_s"] / p["end_to_end_tasks_per_s"], 2),
    })

result = {
    "bench": "tasks_vs_celery",
    "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    "quick": os.environ["QUICK_MODE"] == "1",
    "tasks": int(os.environ["N_USED"]),
    "warmup_tasks": int(os.environ["WARMUP_USED"]),
    "runs": int(os.environ["RUNS_USED"]),
    "drain_tasks": int(os.environ["DRAIN_N_USED"]),
    "drain_runs": int(os.environ["DRAIN_RUNS_USED"]),
    "goal": "ours end to end >= 2x Celery's end-to-end tasks/s",
    "machine": {"cpu": cpu(), "cpus": os.cpu_count(), "kernel": platform.release(),
                "postgresql": os.environ["PG_VERSION"],
                "phases": {name: {"loadavg_before": d["loadavg_before"],
                                  "busy_pct": d["machine_busy_pct"]}
                           for name, d in [("peer", peer), *ours.items()]},
                "note": "busy_pct is the whole machine's CPU use during the phase (100 = both "
                        "cores busy); other sessions' work on this machine counts in it"},
    "ours": {"commit": os.environ["GIT_COMMIT"], "rustc": os.environ["RUSTC_VERSION"],
             "runs": ours},
    "peer": peer,
    "comparison": rows,
    "postgres_scaling": scaling,
}
with open(out_path, "w") as f:
    json.dump(result, f, indent=1)
    f.write("\n")

print(f"\nTasks: {result['tasks']} per run, median of {result['runs']} run(s); written to {out_path}")
print(f"{'':86} {'e2e tasks/s':>12} {'x Celery':>9} {'enqueue/s':>10} {'p50 us':>9} {'p99 us':>9}")
for r in rows:
    ratio = r.get("ratio_end_to_end_vs_celery", 1.0)
    print(f"{r['system'][:86]:86} {r['end_to_end_tasks_per_s']:>12.1f} {ratio:>9.2f} "
          f"{r['enqueue_per_s']:>10.1f} {r['enqueue_p50_us']:>9.1f} {r['enqueue_p99_us']:>9.1f}")
if scaling:
    print(f"\nPostgreSQL, {result['drain_tasks']} tasks enqueued first, then K worker processes drain them "
          f"(median of {result['drain_runs']} run(s)):")
    for s in scaling:
        print(f"  K={s['worker_processes']}: {s['drain_tasks_per_s']:.1f} tasks/s "
              f"({s['speedup_vs_1']:.2f}x K=1, {s['ratio_vs_celery_end_to_end']:.2f}x Celery end to end)")
PY
rm -rf "$work"
