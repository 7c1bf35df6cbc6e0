#!/usr/bin/env bash
# HTTP: a route that sends a signal to 3 handlers, ours beside the Python peer, on this machine.
#
#   bench/compare_http.sh                 # RUNS=3: ours, then the peer, three times; medians
#   RUNS=1 bench/compare_http.sh          # one run of each
#
# Ours: `coordinator serve` (release build, fresh SQLite file in a temp dir, 127.0.0.1:18141,
# [log] level warn with stderr to /dev/null), loaded with
#   wrk -t2 -c64 -d15s --latency -s bench/post_order.lua http://127.0.0.1:18141/api/demo/orders
# which sends demo.order_placed to demo.record_order (ok: it reads the order and returns a
# summary), demo.notify_unreachable_crm (error) and demo.audit_with_bug (panics), the peer's
# shape: its three receivers do no I/O either (one returns a made-up task id, one reads the
# order, one raises). Every dispatch is stored in the dispatch log on SQLite. This wiring is
# pinned by the script (see three_handlers below), whatever
# config/default.toml says. The peer: the Django view of <peers>/django_view_app.py under
# `gunicorn -w 2` on 127.0.0.1:18140, loaded the same way with <peers>/post_event.lua.
#
# Environment:
#   RUNS=3          how many times to measure each side (the medians are reported)
#   DURATION=15s    wrk's -d; CONNECTIONS=64 (-c); THREADS=2 (-t)
#   PEERS_DIR       the peer folder (default <repo>/../shared/peers)
#   SKIP_PEER=1     measure ours only (ratios are then n/a)
#   LABEL=name      suffix of the results file: bench/results/http-<UTC time>-<name>.json
#   WAIT_QUIET=600  first wait (up to 600 s) for a 5 s window with the machine under 10% busy
#   SKIP_BUILD=1    use target/release/coordinator as it is (for quick investigations)
#   STRICT=1        exit 1 when a goal is missed (otherwise only reported)
#   OURS_LOG_LEVEL  our [log] level (default warn: the handlers' ERROR lines are still formatted
#                   and written to /dev/null, as the peer's log lines are); `off` only to measure
#                   what logging costs, never for the headline
#   COORDINATOR__*  passed on to our server and recorded in the results, e.g. to try another wiring:
#                   COORDINATOR__SIGNALS__DEMO__ORDER_PLACED='["demo.enroll_learner","demo.notify_unreachable_crm","demo.audit_with_bug"]'
#                   (the first handler then commits a durable task to SQLite on every request,
#                   which the embedded worker runs: more work than the peer does; LABEL=durable)
#                   or COORDINATOR__DISPATCH_LOG__BATCH_SIZE=2000
#
# Two shapes (SHAPE=inline, the default, or SHAPE=durable), the same three handlers:
#   inline   demo.order_placed is not durable: the three handlers run in the request, as the
#            peer's receivers do. One of them fails and one panics, so the route answers 503
#            with Retry-After naming the failed handler (a 2xx only for work that is done or
#            stored): every answer must be that 503. The peer answers 200 for the same work.
#   durable  demo.order_placed is durable: each request stores the order in the inbox, the
#            dispatch and three delivery tasks in one transaction and answers 202; the embedded
#            worker runs the deliveries meanwhile (the failing ones retried with backoff). Each
#            request has a new order number (bench/post_unique_order.lua). Goal: >= 5x the peer.
#
# Goals (issue 3): requests/s >= 10x the peer's, p99 lower than the peer's, start-up to ready
# < 300 ms, idle RSS < 30 MiB. Any non-2xx answer under load fails the run. Writes the table to
# stdout and the figures (every run, and the medians) to bench/results/http-<UTC time>[-LABEL].json.
set -euo pipefail
export LC_ALL=C

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"

peers="${PEERS_DIR:-$(dirname "$repo")/shared/peers}"
skip_peer="${SKIP_PEER:-0}"
if [[ "$skip_peer" != 1 && ! -f "$peers/django_view_app.py" ]]; then
    echo "error: no django_view_app.py in $peers; set PEERS_DIR to the peer folder (or SKIP_PEER=1)" >&2
    exit 1
fi
runs="${RUNS:-3}"
duration="${DURATION:-15s}"
connections="${CONNECTIONS:-64}"
threads="${THREADS:-2}"
ours_log_level="${OURS_LOG_LEVEL:-warn}"
# The shape measured: demo.order_placed to 3 handlers, one that succeeds, one that returns an
# error, one that panics (the peer's: ok, ok, raises). Pinned here, so that a change of the
# default configuration does not change the benchmark; set the variable to measure another
# wiring (it is recorded in the results).
three_handlers='["demo.record_order","demo.notify_unreachable_crm","demo.audit_with_bug"]'
shape="${SHAPE:-inline}"
case "$shape" in
    inline) pinned="$three_handlers"; lua="post_order.lua"; expect=503; goal_ratio=10 ;;
    durable) pinned="{ durable = true, handlers = $three_handlers }"; lua="post_unique_order.lua"; expect=202; goal_ratio=5
             LABEL="${LABEL:-durable}" ;;
    *) echo "error: SHAPE must be inline or durable, got $shape" >&2; exit 2 ;;
esac
wiring_pinned=0
if [[ -z "${COORDINATOR__SIGNALS__DEMO__ORDER_PLACED:-}" ]]; then
    export COORDINATOR__SIGNALS__DEMO__ORDER_PLACED="$pinned"
    wiring_pinned=1
fi
[[ "$runs" =~ ^[1-9][0-9]?$ ]] || { echo "error: RUNS must be 1 to 99, got $runs" >&2; exit 2; }

ours_port=18141
peer_port=18140
host=127.0.0.1
token="bench-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')"
venv="$repo/bench/.venv"
results="$repo/bench/results"

log() { echo "==> $*" >&2; }
die() { echo "error: $*" >&2; exit 1; }

# --- 1. Tools and the build -------------------------------------------------------------------
if ! command -v wrk >/dev/null; then
    log "installing wrk"
    apt-get update >&2
    apt-get install -y wrk >&2
fi
if [[ "$skip_peer" != 1 ]]; then
    if ! "$venv/bin/python" -c 'import django' 2>/dev/null; then
        log "creating $venv from $peers/requirements.txt"
        python3 -m venv "$venv"
        "$venv/bin/python" -m pip install --quiet --upgrade pip
        "$venv/bin/python" -m pip install --quiet -r "$peers/requirements.txt"
    fi
    if [[ ! -x "$venv/bin/gunicorn" ]]; then
        log "installing gunicorn in $venv"
        "$venv/bin/python" -m pip install --quiet gunicorn==27.0.1
    fi
fi
command -v curl >/dev/null || die "curl is needed"
if [[ "${SKIP_BUILD:-0}" != 1 ]]; then
    log "cargo build --release -p coordinator-server"
    cargo build --release -p coordinator-server >&2
fi
target_dir="$(cargo metadata --format-version 1 --no-deps |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')"
bin="$target_dir/release/coordinator"
[[ -x "$bin" ]] || die "no binary at $bin after the build"

mkdir -p "$results"
work="$(mktemp -d -t compare_http.XXXXXX)"

# --- Processes we started, stopped on any exit ------------------------------------------------
ours_pid=""
peer_pidfile="$work/peer.pid"
alive() { [[ -n "${1:-}" ]] && kill -0 "$1" 2>/dev/null; }
wait_gone() { # wait_gone PID SECONDS: true when PID is gone within SECONDS (polled every 50 ms)
    local i
    for ((i = 0; i < $2 * 20; i++)); do alive "$1" || return 0; pause 0.05; done
    ! alive "$1"
}
peer_master() { [[ -s "$peer_pidfile" ]] && cat "$peer_pidfile"; }
stop_peer() { # SIGTERM to the gunicorn master (a graceful stop of its workers), SIGKILL if stuck
    local master workers
    master="$(peer_master || true)"
    alive "$master" || return 0
    workers="$(pgrep -P "$master" || true)"
    kill -TERM "$master" 2>/dev/null || true
    if ! wait_gone "$master" 35; then
        echo "warning: the peer's gunicorn master $master did not stop in 35 s; SIGKILL" >&2
        kill -KILL "$master" 2>/dev/null || true
    fi
    for w in $workers; do
        if alive "$w"; then kill -KILL "$w" 2>/dev/null || true; fi
    done
    rm -f "$peer_pidfile"
}
cleanup() {
    local rc=$?
    if alive "$ours_pid"; then
        kill -TERM "$ours_pid" 2>/dev/null || true
        wait_gone "$ours_pid" 35 || kill -KILL "$ours_pid" 2>/dev/null || true
    fi
    stop_peer || true
    [[ -n "${sleep_fd:-}" ]] && exec {sleep_fd}>&-
    rm -rf "$work"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Every run uses this copy, so that a build by someone else during the runs cannot change it.
cp "$bin" "$work/coordinator"
bin_sha="$(sha256sum "$work/coordinator" | cut -c1-16)"
bin="$work/coordinator"

# A sleep without a fork: read with a time-out from a FIFO that nobody writes.
mkfifo "$work/never"
exec {sleep_fd}<>"$work/never"
pause() { read -r -t "$1" -u "$sleep_fd" _ || true; }

now_us() { local t="$EPOCHREALTIME"; echo "${t/./}"; }

# http_status PORT METHOD PATH: the status code of one HTTP/1.0 request to 127.0.0.1:PORT, or
# nothing when nothing answers. Bash's /dev/tcp: no process is started, so it can poll every 5 ms.
http_status() {
    local fd line code=""
    { exec {fd}<>"/dev/tcp/$host/$1"; } 2>/dev/null || return 0
    printf '%s %s HTTP/1.0\r\nHost: %s:%s\r\n\r\n' "$2" "$3" "$host" "$1" >&"$fd" 2>/dev/null || true
    if IFS=$' \r' read -r -t 1 -u "$fd" _ code _ 2>/dev/null; then echo "$code"; fi
    exec {fd}>&-
}
port_free() { # true when nothing accepts connections on 127.0.0.1:PORT
    local fd
    { exec {fd}<>"/dev/tcp/$host/$1"; } 2>/dev/null || return 0
    exec {fd}>&-
    return 1
}

loadavg() { cut -d' ' -f1-3 /proc/loadavg; }
cpu_jiffies() { awk '/^cpu /{print $2+$3+$4+$7+$8+$9, $5+$6}' /proc/stat; }
busy_pct() {
    local b0 i0 b1 i1
    read -r b0 i0 <<<"$1"
    read -r b1 i1 <<<"$2"
    awk -v b="$((b1 - b0))" -v i="$((i1 - i0))" 'BEGIN { printf "%.0f", (b + i) ? 100 * b / (b + i) : 0 }'
}
# CPU seconds (user + system) used so far by the given processes.
cpu_ticks() {
    local sum=0 p f
    for p in "$@"; do
        [[ -r "/proc/$p/stat" ]] || continue
        f="$(sed 's/.*) //' "/proc/$p/stat")"
        set -- $f
        sum=$((sum + ${12} + ${13}))
    done
    echo "$sum"
}
clk_tck="$(getconf CLK_TCK)"
status_kib() { awk -v k="$2:" '$1 == k {print $2}' "/proc/$1/status" 2>/dev/null; }
pss_kib() { awk '$1 == "Pss:" {print $2}' "/proc/$1/smaps_rollup" 2>/dev/null || echo 0; }

# Records one figure: record RUN SIDE KEY VALUE (VALUE without tabs or newlines).
figures="$work/figures.tsv"
: >"$figures"
record() { printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" >>"$figures"; }

run_wrk() { # run_wrk OUTFILE LUA URL EXPECT [env...]: wrk's output in OUTFILE; EXPECT 2xx or 503
    local out="$1" lua="$2" url="$3" want="$4" total non2xx
    shift 4
    env "$@" wrk "-t$threads" "-c$connections" "-d$duration" --latency -s "$lua" "$url" >"$out" 2>&1 ||
        { cat "$out" >&2; die "wrk failed on $url"; }
    cat "$out" >&2
    non2xx="$(awk '/Non-2xx or 3xx responses/ {print $NF}' "$out")"
    total="$(awk '/requests in/ {print $1; exit}' "$out")"
    if [[ "$want" == 2xx && -n "$non2xx" ]]; then
        die "$non2xx non-2xx answers from $url: every answer must be 2xx"
    fi
    if [[ "$want" == 503 && "${non2xx:-0}" != "$total" ]]; then
        die "${non2xx:-0} of $total answers from $url were not 2xx: with a failing handler run in the request, every answer must be the 503"
    fi
    grep -q 'Requests/sec:' "$out" || die "no Requests/sec in wrk's output for $url"
    if grep -q 'Socket errors' "$out"; then
        echo "warning: $(grep 'Socket errors' "$out" | sed 's/^ *//') on $url" >&2
    fi
}

order_json='{"order_number": "EDX-100001", "lms_user_id": 12345, "email": "ada@example.com", "course_run_key": "course-v1:edX+DemoX+T1", "amount_cents": 4900}'

# --- 2-4. Ours ----------------------------------------------------------------------------------
measure_ours() {
    local run="$1" dir="$work/ours-$run" t0 t1 code="" i rss cpu0 cpu1 j0 j1 body rc handlers
    mkdir -p "$dir"
    port_free "$ours_port" || die "127.0.0.1:$ours_port is in use; stop what listens there"
    record "$run" ours load_before "$(loadavg)"
    t0="$(now_us)"
    COORDINATOR__AUTH__API_TOKENS="[\"$token\"]" \
        COORDINATOR__SERVER__BIND="$host:$ours_port" \
        COORDINATOR__STORAGE__URL="sqlite://$dir/coordinator.db" \
        COORDINATOR__LOG__LEVEL="$ours_log_level" \
        RUST_LOG= \
        "$bin" serve </dev/null >/dev/null 2>/dev/null &
    ours_pid=$!
    # Start-up: from the spawn until /ready answers 200, polled every 5 ms (at most 20 s).
    for ((i = 0; i < 4000; i++)); do
        code="$(http_status "$ours_port" GET /ready)"
        [[ "$code" == 200 ]] && break
        alive "$ours_pid" || break
        (($(now_us) - t0 > 20000000)) && break
        pause 0.005
    done
    t1="$(now_us)"
    if [[ "$code" != 200 ]]; then
        if ! alive "$ours_pid"; then
            rc=0; wait "$ours_pid" || rc=$?
            ours_pid=""
            echo "the server exited with status $rc before it was ready; its configuration check says:" >&2
            COORDINATOR__AUTH__API_TOKENS="[\"$token\"]" COORDINATOR__SERVER__BIND="$host:$ours_port" \
                COORDINATOR__STORAGE__URL="sqlite://$dir/coordinator.db" "$bin" check >&2 || true
        fi
        die "our server was not ready after $(((t1 - t0) / 1000)) ms (/ready answered '${code:-nothing}')"
    fi
    record "$run" ours startup_ms "$(awk -v d="$((t1 - t0))" 'BEGIN { printf "%.1f", d / 1000 }')"
    record "$run" ours startup_polls "$((i + 1))"
    # Idle memory: about 1 s after ready, before any request.
    pause 1
    rss="$(status_kib "$ours_pid" VmRSS)"
    record "$run" ours idle_rss_kib "$rss"
    record "$run" ours idle_pss_kib "$(pss_kib "$ours_pid")"
    record "$run" ours threads "$(status_kib "$ours_pid" Threads)"

    # One request by hand. Inline: 503 naming the failed handler. Durable: 202 with each
    # handler's delivery queued.
    body="$(curl -sS --max-time 5 -o - -w '\n%{http_code}' -X POST "http://$host:$ours_port/api/demo/orders" \
        -H "Authorization: Bearer $token" -H 'Content-Type: application/json' -d "$order_json")"
    [[ "${body##*$'\n'}" == "$expect" ]] || die "POST /api/demo/orders answered ${body##*$'\n'}, not $expect: ${body%$'\n'*}"
    if [[ "$expect" == 202 ]]; then
        handlers="$(python3 -c 'import json, sys; d = json.loads(sys.argv[1]); print(", ".join(h["handler"] + "=" + h["status"] for h in d["handlers"]))' "${body%$'\n'*}")"
        if ((wiring_pinned)) &&
            [[ "$handlers" != "demo.record_order=queued, demo.notify_unreachable_crm=queued, demo.audit_with_bug=queued" ]]; then
            die "expected the 3 deliveries queued; the route answered: $handlers"
        fi
    else
        handlers="$(python3 -c 'import json, sys; d = json.loads(sys.argv[1]); print("503: handler " + d["handler"])' "${body%$'\n'*}")"
        if ((wiring_pinned)) && [[ "$handlers" != "503: handler demo.notify_unreachable_crm" ]]; then
            die "expected a 503 naming demo.notify_unreachable_crm; the route answered: $handlers"
        fi
    fi
    record "$run" ours handlers "$handlers"

    log "run $run/$runs, ours ($shape): wrk -t$threads -c$connections -d$duration --latency -s bench/$lua http://$host:$ours_port/api/demo/orders"
    cpu0="$(cpu_ticks "$ours_pid")"; j0="$(cpu_jiffies)"
    if [[ "$expect" == 202 ]]; then want=2xx; else want=503; fi
    run_wrk "$dir/wrk.txt" "$repo/bench/$lua" "http://$host:$ours_port/api/demo/orders" "$want" BENCH_TOKEN="$token"
    cpu1="$(cpu_ticks "$ours_pid")"; j1="$(cpu_jiffies)"
    record "$run" ours wrk "$(base64 -w0 "$dir/wrk.txt")"
    record "$run" ours server_cpu_s "$(awk -v t="$((cpu1 - cpu0))" -v h="$clk_tck" 'BEGIN { printf "%.2f", t / h }')"
    record "$run" ours machine_busy_pct "$(busy_pct "$j0" "$j1")"
    record "$run" ours rss_after_load_kib "$(status_kib "$ours_pid" VmRSS)"
    record "$run" ours hwm_kib "$(status_kib "$ours_pid" VmHWM)"

    # The dispatch log has rows, and what its writer says.
    pause 0.3
    body="$(curl -sS --max-time 5 -H "Authorization: Bearer $token" "http://$host:$ours_port/api/v1/dispatches?limit=1")"
    if [[ "${COORDINATOR__DISPATCH_LOG__ENABLED:-true}" == false ]]; then
        echo "note: [dispatch_log] enabled = false: the dispatch log is not checked" >&2
    else
        python3 -c 'import json, sys; d = json.loads(sys.argv[1]); sys.exit(0 if d.get("items") else 1)' "$body" ||
            die "GET /api/v1/dispatches?limit=1 has no rows after the load: $body"
    fi
    curl -sS --max-time 5 "http://$host:$ours_port/metrics" >"$dir/metrics.txt" || true
    for m in dispatch_log_dropped dispatch_log_written dispatch_log_buffered dispatch_log_write_errors; do
        record "$run" ours "$m" "$(awk -v m="$m" '$1 ~ "^(coordinator_)?" m "(_total)?$" {print $2; exit}' "$dir/metrics.txt")"
    done

    # Stop: SIGTERM, it must exit 0 after writing every buffered report.
    t0="$(now_us)"
    kill -TERM "$ours_pid"
    wait_gone "$ours_pid" 35 || die "our server did not stop within 35 s of SIGTERM"
    rc=0; wait "$ours_pid" || rc=$?
    t1="$(now_us)"
    ours_pid=""
    ((rc == 0)) || die "our server exited with status $rc after SIGTERM (expected 0)"
    record "$run" ours stop_ms "$(awk -v d="$((t1 - t0))" 'BEGIN { printf "%.1f", d / 1000 }')"
    if command -v sqlite3 >/dev/null; then
        record "$run" ours db_dispatches "$(sqlite3 "$dir/coordinator.db" 'SELECT count(*) FROM coordinator_dispatches')"
        record "$run" ours db_order_placed "$(sqlite3 "$dir/coordinator.db" "SELECT count(*) FROM coordinator_dispatches WHERE signal = 'demo.order_placed'" 2>/dev/null || echo "")"
        record "$run" ours db_runs "$(sqlite3 "$dir/coordinator.db" 'SELECT count(*) FROM coordinator_dispatch_runs')"
        record "$run" ours db_deliveries "$(sqlite3 "$dir/coordinator.db" "SELECT count(*) FROM coordinator_tasks WHERE task LIKE 'deliver:%'")"
    fi
    rm -rf "$dir"/coordinator.db*
}

# --- 4. The peer ----------------------------------------------------------------------------------
measure_peer() {
    local run="$1" dir="$work/peer-$run" t0 t1 code="" i master workers rss pss cpu0 cpu1 j0 j1 body
    mkdir -p "$dir"
    port_free "$peer_port" || die "127.0.0.1:$peer_port is in use; stop what listens there"
    record "$run" peer load_before "$(loadavg)"
    t0="$(now_us)"
    # As the peer README says, from its folder (read-only: the pid file goes to our temp dir).
    (cd "$peers" && PYTHONDONTWRITEBYTECODE=1 "$venv/bin/gunicorn" -w 2 -b "$host:$peer_port" \
        --log-level warning django_view_app:application --daemon --pid "$peer_pidfile") </dev/null
    for ((i = 0; i < 4000; i++)); do
        code="$(http_status "$peer_port" GET /event/)"
        [[ -n "$code" ]] && break
        (($(now_us) - t0 > 20000000)) && break
        pause 0.005
    done
    t1="$(now_us)"
    [[ "$code" == 405 ]] || die "the peer did not answer GET /event/ with 405 within 20 s (got '${code:-nothing}')"
    record "$run" peer startup_ms "$(awk -v d="$((t1 - t0))" 'BEGIN { printf "%.1f", d / 1000 }')"
    master="$(peer_master)" || die "gunicorn wrote no pid file"
    # Both workers up (the first answer may come before the second worker has booted).
    for ((i = 0; i < 400; i++)); do
        workers="$(pgrep -P "$master" | tr '\n' ' ')"
        (($(wc -w <<<"$workers") >= 2)) && break
        pause 0.05
    done
    pause 1
    rss=0; pss=0
    for p in $master $workers; do
        rss=$((rss + $(status_kib "$p" VmRSS))); pss=$((pss + $(pss_kib "$p")))
    done
    record "$run" peer idle_rss_kib "$rss"
    record "$run" peer idle_pss_kib "$pss"
    record "$run" peer processes "$(wc -w <<<"$master $workers")"

    body="$(curl -sS --max-time 5 -o - -w '\n%{http_code}' -X POST "http://$host:$peer_port/event/" \
        -H 'Content-Type: application/json' -d '{"order_number": "EDX-100001", "edx_lms_user_id": 12345}')"
    [[ "${body##*$'\n'}" == 200 ]] || die "the peer's POST /event/ answered ${body##*$'\n'}, not 200"
    record "$run" peer handlers "$(python3 -c 'import json, sys; d = json.loads(sys.argv[1])["results"]; print(", ".join(k + "=" + ("error" if v["error"] else "ok") for k, v in d.items()))' "${body%$'\n'*}")"

    log "run $run/$runs, peer: wrk -t$threads -c$connections -d$duration --latency -s $peers/post_event.lua http://$host:$peer_port/event/"
    cpu0="$(cpu_ticks "$master" $workers)"; j0="$(cpu_jiffies)"
    run_wrk "$dir/wrk.txt" "$peers/post_event.lua" "http://$host:$peer_port/event/" 2xx
    cpu1="$(cpu_ticks "$master" $workers)"; j1="$(cpu_jiffies)"
    record "$run" peer wrk "$(base64 -w0 "$dir/wrk.txt")"
    record "$run" peer server_cpu_s "$(awk -v t="$((cpu1 - cpu0))" -v h="$clk_tck" 'BEGIN { printf "%.2f", t / h }')"
    record "$run" peer machine_busy_pct "$(busy_pct "$j0" "$j1")"
    stop_peer
}

# --- Run -----------------------------------------------------------------------------------------
if [[ -n "${WAIT_QUIET:-}" ]]; then
    deadline=$(($(date +%s) + WAIT_QUIET))
    while :; do
        j0="$(cpu_jiffies)"; pause 5; pct="$(busy_pct "$j0" "$(cpu_jiffies)")"
        ((pct < 10)) && { log "machine quiet (${pct}% busy)"; break; }
        (($(date +%s) >= deadline)) && { log "still ${pct}% busy after ${WAIT_QUIET}s; measuring anyway"; break; }
    done
fi
load_start="$(loadavg)"
log "load average before: $load_start"
for ((run = 1; run <= runs; run++)); do
    measure_ours "$run"
    [[ "$skip_peer" == 1 ]] || measure_peer "$run"
done
load_end="$(loadavg)"

# --- 5. Table and JSON -----------------------------------------------------------------------
overrides="$(env | grep -E '^COORDINATOR__' | grep -viE 'TOKEN|SECRET|PASSWORD|KEY=' | sort || true)"
if ((wiring_pinned)); then
    overrides="$(grep -v '^COORDINATOR__SIGNALS__DEMO__ORDER_PLACED=' <<<"$overrides" || true)"
fi
out="$results/http-$(date -u +%Y-%m-%dT%H%MZ)${LABEL:+-$LABEL}.json"
export FIGURES="$figures" OUT="$out" LOAD_START="$load_start" LOAD_END="$load_end" RUNS="$runs" \
    WRK_ARGS="-t$threads -c$connections -d$duration --latency" OVERRIDES="$overrides" SKIP_PEER="$skip_peer" \
    RUSTC_VERSION="$(rustc --version)" WRK_VERSION="$(wrk -v 2>&1 | head -n1 || true)" \
    GIT_COMMIT="${GIT_COMMIT:-$(git -C "$repo" describe --always --dirty 2>/dev/null || echo unknown)}" \
    PEERS="$peers" LABEL="${LABEL:-}" BIN_SHA="$bin_sha" WIRING="$COORDINATOR__SIGNALS__DEMO__ORDER_PLACED" OURS_LOG_LEVEL="$ours_log_level" \
    SHAPE="$shape" GOAL_RATIO="$goal_ratio" LUA="bench/$lua" EXPECT="$expect"
python3 - <<'PY'
import base64, json, os, re, statistics, sys, time

rows = {}
for line in open(os.environ["FIGURES"]):
    run, side, key, value = line.rstrip("\n").split("\t", 3)
    rows.setdefault(side, {}).setdefault(int(run), {})[key] = value

UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 6e4, "h": 3.6e6}

def ms(text):
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m|h)", text)
    if not m:
        sys.exit(f"error: cannot read the latency {text!r} in wrk's output")
    return float(m.group(1)) * UNITS[m.group(2)]

def parse_wrk(text):
    out = {}
    out["requests_per_s"] = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
    m = re.search(r"(\d+) requests in ([\d.]+\w+), ([\d.]+\w+) read", text)
    out["requests"] = int(m.group(1))
    out["duration_ms"] = ms(m.group(2))
    for pct in ("50", "75", "90", "99"):
        m = re.search(rf"^\s+{pct}%\s+(\S+)", text, re.M)
        out[f"p{pct}_ms"] = round(ms(m.group(1)), 3)
    m = re.search(r"Latency\s+(\S+)\s+(\S+)\s+(\S+)", text)
    out["mean_ms"], out["max_ms"] = round(ms(m.group(1)), 3), round(ms(m.group(3)), 3)
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    out["non_2xx"] = int(m.group(1)) if m else 0
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    out["socket_errors"] = dict(zip(("connect", "read", "write", "timeout"), map(int, m.groups()))) if m else {}
    return out

NUM = re.compile(r"^-?\d+(\.\d+)?$")
per_run = {}
for side, by_run in rows.items():
    per_run[side] = []
    for run in sorted(by_run):
        r = {"run": run}
        for k, v in by_run[run].items():
            if k == "wrk":
                text = base64.b64decode(v).decode()
                r.update(parse_wrk(text))
                r["wrk_output"] = text
            elif k.endswith("_kib") and v:
                r[k[:-4] + "_mib"] = round(int(v) / 1024, 2)
            elif NUM.match(v):
                r[k] = float(v) if "." in v else int(v)
            else:
                r[k] = v
        per_run[side].append(r)

def median(side, key):
    vals = [r[key] for r in per_run.get(side, []) if isinstance(r.get(key), (int, float))]
    return round(statistics.median(vals), 3) if vals else None

keys = ["requests_per_s", "p50_ms", "p75_ms", "p90_ms", "p99_ms", "mean_ms", "max_ms", "requests",
        "startup_ms", "idle_rss_mib", "idle_pss_mib", "server_cpu_s", "machine_busy_pct",
        "rss_after_load_mib", "hwm_mib", "stop_ms", "dispatch_log_dropped", "dispatch_log_written",
        "db_dispatches", "db_order_placed", "db_deliveries"]
med = {side: {k: median(side, k) for k in keys if median(side, k) is not None} for side in per_run}
ours, peer = med.get("ours", {}), med.get("peer", {})

ratio = round(ours["requests_per_s"] / peer["requests_per_s"], 2) if peer else None
GOAL = float(os.environ["GOAL_RATIO"])
goals = {
    "requests_per_s_ratio_at_least_goal": None if ratio is None else ratio >= GOAL,
    "p99_lower_than_peer": None if not peer else ours["p99_ms"] < peer["p99_ms"],
    "startup_under_300_ms": ours["startup_ms"] < 300,
    "idle_rss_under_30_mib": ours["idle_rss_mib"] < 30,
}
per_run_ratios = []
if peer:
    for o, p in zip(per_run["ours"], per_run["peer"]):
        per_run_ratios.append(round(o["requests_per_s"] / p["requests_per_s"], 2))

def cpu():
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"

doc = {
    "benchmark": "http: POST a route that sends a signal to its handlers (by default 3: 1 ok, 1 error, 1 panic)",
    "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    "machine": {"cpus": os.cpu_count(), "cpu": cpu(), "load_before": os.environ["LOAD_START"],
                "load_after": os.environ["LOAD_END"]},
    "versions": {"rustc": os.environ["RUSTC_VERSION"], "wrk": os.environ["WRK_VERSION"],
                 "git": os.environ["GIT_COMMIT"],
                 "binary_sha256_prefix": os.environ["BIN_SHA"]},
    "wrk_args": os.environ["WRK_ARGS"],
    "shape": os.environ["SHAPE"],
    "ours_expected_status": int(os.environ["EXPECT"]),
    "ours": {"command": "target/release/coordinator serve (SQLite in a temp dir, stderr to /dev/null)",
             "log_level": os.environ["OURS_LOG_LEVEL"],
             "demo.order_placed": os.environ["WIRING"],
             "url": "http://127.0.0.1:18141/api/demo/orders", "lua": os.environ["LUA"],
             "overrides": [l for l in os.environ["OVERRIDES"].splitlines() if l]},
    "peer": None if os.environ["SKIP_PEER"] == "1" else {
        "command": "gunicorn -w 2 -b 127.0.0.1:18140 --log-level warning django_view_app:application --daemon",
        "url": "http://127.0.0.1:18140/event/", "lua": os.path.join(os.environ["PEERS"], "post_event.lua")},
    "runs": int(os.environ["RUNS"]),
    "median": med,
    "requests_per_s_ratio": ratio,
    "requests_per_s_ratio_per_run": per_run_ratios,
    "goals": goals,
    "per_run": per_run,
}
with open(os.environ["OUT"], "w") as f:
    json.dump(doc, f, indent=2)
    f.write("\n")

def fmt(v, spec):
    return "n/a" if v is None else format(v, spec)

n = int(os.environ["RUNS"])
title = f"HTTP, {os.environ['WRK_ARGS']}, median of {n} run{'s' if n > 1 else ''}"
print(title)
print("ours: demo.order_placed = " + doc["ours"]["demo.order_placed"] + " (" + os.environ["SHAPE"] + ")")
if doc["ours"]["overrides"] or os.environ["OURS_LOG_LEVEL"] != "warn":
    print("ours with: " + "; ".join(doc["ours"]["overrides"] + [f"[log] level {os.environ['OURS_LOG_LEVEL']}"]))
print(f"{'':22} {'ours':>12} {'peer':>12}  goal")
print(f"{'requests/s':22} {fmt(ours.get('requests_per_s'), ',.0f'):>12} {fmt(peer.get('requests_per_s'), ',.0f'):>12}")
print(f"{'p50 ms':22} {fmt(ours.get('p50_ms'), '.2f'):>12} {fmt(peer.get('p50_ms'), '.2f'):>12}")
print(f"{'p99 ms':22} {fmt(ours.get('p99_ms'), '.2f'):>12} {fmt(peer.get('p99_ms'), '.2f'):>12}")
print(f"{'start-up to ready ms':22} {fmt(ours.get('startup_ms'), '.1f'):>12} {fmt(peer.get('startup_ms'), '.1f'):>12}  < 300 (ours)")
print(f"{'idle RSS MiB':22} {fmt(ours.get('idle_rss_mib'), '.1f'):>12} {fmt(peer.get('idle_rss_mib'), '.1f'):>12}  < 30 (ours; peer: sum of master + workers)")
print(f"{'server CPU s in load':22} {fmt(ours.get('server_cpu_s'), '.1f'):>12} {fmt(peer.get('server_cpu_s'), '.1f'):>12}")
print()
def verdict(ok):
    return "n/a" if ok is None else ("met" if ok else "MISSED")
print(f"requests/s ratio ours/peer ({os.environ['SHAPE']}): {fmt(ratio, '.2f')}{'x' if ratio else ''} (goal >= {GOAL:g}x): {verdict(goals['requests_per_s_ratio_at_least_goal'])}"
      + (f"   per run: {', '.join(f'{r:.2f}x' for r in per_run_ratios)}" if per_run_ratios else ""))
print(f"our p99 lower than the peer's: {verdict(goals['p99_lower_than_peer'])}")
print(f"start-up < 300 ms: {verdict(goals['startup_under_300_ms'])}")
print(f"idle RSS < 30 MiB: {verdict(goals['idle_rss_under_30_mib'])}")
print(f"dispatch log (ours, median of runs): {fmt(ours.get('requests'), '.0f')} requests answered in the load; "
      f"{fmt(ours.get('db_order_placed'), '.0f')} demo.order_placed and {fmt(ours.get('db_dispatches'), '.0f')} dispatches "
      f"in the database after the stop; {fmt(ours.get('dispatch_log_dropped'), '.0f')} reports dropped")
if os.environ["SHAPE"] == "durable":
    stored = [r.get("db_order_placed", 0) >= r.get("requests", 0) + 1 for r in per_run.get("ours", [])]
    print(f"durable: every answered order stored with its dispatch in every run: {'yes' if stored and all(stored) else 'NO'}; "
          f"{fmt(ours.get('db_deliveries'), '.0f')} deliveries stored (median)")
print(f"load average before {os.environ['LOAD_START']}, after {os.environ['LOAD_END']}; machine busy during the loads "
      f"(median): ours {fmt(ours.get('machine_busy_pct'), '.0f')}%, peer {fmt(peer.get('machine_busy_pct'), '.0f')}%")
print(f"results: {os.environ['OUT']}")
missed = [k for k, v in goals.items() if v is False]
if missed and os.environ.get("STRICT") == "1":
    sys.exit("error: goals missed: " + ", ".join(missed))
PY
