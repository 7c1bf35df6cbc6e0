#!/usr/bin/env bash
# Order fulfillment throughput against the sandbox, on SQLite and PostgreSQL (issue 9):
#
#   1. messages accepted per second at POST /commercetools/fulfill (wrk, 64 connections, each
#      request a new message id for one of the seeded orders: validated, stored with its
#      delivery in one commit, answered 202);
#   2. orders fulfilled per second end to end: ORDERS fresh orders, one message each, posted
#      at once; the clock stops when every order's line item is recorded in the success state
#      (its commercetools.record_fulfillment delivery succeeded): the route, the durable
#      delivery, commercetools reads and updates, the LMS enrollment task, the completion
#      signal and the final update, all through the embedded worker and the in-process
#      sandbox over HTTP.
#
#   bench/fulfillment.sh                 # both backends (PostgreSQL when it answers)
#   SKIP_BUILD=1 BACKENDS=sqlite ORDERS=300 DURATION=10s bench/fulfillment.sh
#
# Results: bench/results/fulfillment-<UTC time>.json, and a summary on stdout. No peer: the
# Python peer's benchmark has no fulfillment flow to compare with.
set -euo pipefail
cd "$(dirname "$0")/.."
repo="$(pwd)"

orders="${ORDERS:-500}"
duration="${DURATION:-10s}"
backends="${BACKENDS:-sqlite postgres}"
pg_admin="${PG_ADMIN_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
token="bench-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')"
log() { echo "==> $*" >&2; }
die() { echo "error: $*" >&2; exit 1; }

command -v wrk >/dev/null || { log "installing wrk"; apt-get install -y wrk >&2; }
if [[ -z "${SKIP_BUILD:-}" ]]; then
    log "building the release binary"
    cargo build --release -q -p coordinator-server
fi
target="$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')"
bin="$target/release/coordinator"
[[ -x "$bin" ]] || die "no release binary at $bin"

work="$(mktemp -d)"
server_pid=""
cleanup() {
    [[ -n "$server_pid" ]] && kill -KILL "$server_pid" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

start_server() { # start_server STORAGE_URL: starts serve on a free port; sets $port, $server_pid
    port="$(free_port)"
    cat >"$work/coordinator.toml" <<EOF
[extensions]
enabled = ["commercetools", "lms", "sandbox"]

[signals."commercetools.fulfillment_requested"]
durable = true
handlers = ["commercetools.fulfill_order"]

[signals."lms.fulfillment_completed"]
durable = true
handlers = ["commercetools.record_fulfillment"]

[server]
bind = "127.0.0.1:$port"

[server.mounts]
commercetools = "/commercetools"
sandbox = "/sandbox"

[storage]
url = "$1"

[log]
level = "warn"

[extension.lms]
url = "http://127.0.0.1:$port/sandbox/lms"
client_id = "sandbox"
client_secret = "sandbox"

[extension.commercetools]
api_url = "http://127.0.0.1:$port/sandbox/commercetools"
auth_url = "http://127.0.0.1:$port/sandbox/commercetools"
project_key = "sandbox"
client_id = "sandbox"
client_secret = "sandbox"
EOF
    COORDINATOR__AUTH__API_TOKENS="[\"$token\"]" RUST_LOG= \
        "$bin" --config "$work/coordinator.toml" serve </dev/null >"$work/server.log" 2>&1 &
    server_pid=$!
    for _ in $(seq 1 200); do
        curl -fsS -o /dev/null "http://127.0.0.1:$port/ready" 2>/dev/null && return 0
        kill -0 "$server_pid" 2>/dev/null || { tail -20 "$work/server.log" >&2; die "serve exited"; }
        sleep 0.05
    done
    die "serve was not ready in 10 s"
}

stop_server() {
    kill -TERM "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
    server_pid=""
}

# Seeds N orders (one course line item each) in the sandbox; writes their ids, one per line,
# to FILE. Prints the pending state's id.
seed() { # seed N FILE PREFIX
    python3 - "$port" "$1" "$2" "$3" <<'EOF'
import http.client, json, sys
port, n, out, prefix = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
c = http.client.HTTPConnection("127.0.0.1", port)
ids = []
for i in range(n):
    body = json.dumps({"order_number": f"{prefix}-{i}", "lms_user_id": 1000 + i,
                       "username": f"learner{i}", "email": f"learner{i}@example.com",
                       "items": [{"kind": "course", "sku": f"course-v1:edX+Bench+{i}", "mode": "verified"}]})
    c.request("POST", "/sandbox/commercetools/_orders", body, {"Content-Type": "application/json"})
    r = c.getresponse(); data = r.read()
    if r.status != 201: sys.exit(f"seeding answered {r.status}: {data[:200]}")
    ids.append(json.loads(data)["id"])
open(out, "w").write("\n".join(ids) + "\n")
c.request("GET", "/sandbox/commercetools/sandbox/states/key=2u-fulfillment-pending-state",
          headers={"Authorization": "Bearer sandbox-ct-token"})
print(json.loads(c.getresponse().read())["id"])
EOF
}

# Counts the tasks named TASK in STATE in the database.
count_tasks() { # count_tasks STORAGE_URL TASK STATE
    case "$1" in
        sqlite://*) sqlite3 "${1#sqlite://}" "SELECT COUNT(*) FROM coordinator_tasks WHERE task = '$2' AND state = '$3'" 2>/dev/null || echo 0 ;;
        postgres://*) psql -qtA "$1" -c "SELECT COUNT(*) FROM coordinator_tasks WHERE task = '$2' AND state = '$3'" 2>/dev/null || echo 0 ;;
    esac
}

results="$repo/bench/results/fulfillment-$(date -u +%Y-%m-%dT%H%MZ).json"
echo "{" >"$work/results.json"
first=1
for backend in $backends; do
    case "$backend" in
        sqlite) url="sqlite://$work/sqlite/coordinator.db" ;;
        postgres)
            if ! psql -qtA "$pg_admin" -c 'SELECT 1' >/dev/null 2>&1; then
                log "PostgreSQL does not answer at $pg_admin: skipped"
                continue
            fi
            db="bench_fulfillment_$$"
            psql -qtA "$pg_admin" -c "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db" >/dev/null
            url="${pg_admin%/*}/$db" ;;
        *) die "unknown backend $backend (sqlite or postgres)" ;;
    esac

    # 1. Messages accepted per second.
    start_server "$url"
    pending="$(seed 200 "$work/orders.txt" "EDX-RATE")"
    cat >"$work/post_message.lua" <<EOF
local ids = {}
for line in io.lines("$work/orders.txt") do ids[#ids + 1] = line end
local threads, run = {}, tostring(os.time())
function setup(thread) thread:set("id", #threads + 1); table.insert(threads, thread) end
function init(args)
   n = 0
   headers = { ["Content-Type"] = "application/json", ["Authorization"] = "Bearer $token" }
end
function request()
   n = n + 1
   local order = ids[(n % #ids) + 1]
   local body = string.format('{"detail": {"id": "m-%s-%d-%d", "type": "LineItemStateTransition", "resource": {"typeId": "order", "id": "%s"}, "fromState": {"typeId": "state", "id": "initial"}, "toState": {"typeId": "state", "id": "$pending"}}}', run, id, n, order)
   return wrk.format("POST", "/commercetools/fulfill", headers, body)
end
EOF
    log "$backend: wrk -t2 -c64 -d$duration POST /commercetools/fulfill"
    wrk -t2 -c64 -d"$duration" --latency -s "$work/post_message.lua" "http://127.0.0.1:$port" >"$work/wrk.txt"
    accepted="$(awk '/Requests\/sec:/ { print $2 }' "$work/wrk.txt")"
    non2xx="$(awk '/Non-2xx/ { print $5 }' "$work/wrk.txt")"
    p99="$(awk '$1 == "99%" { print $2 }' "$work/wrk.txt")"
    stop_server

    # 2. Orders fulfilled per second, end to end (a fresh server and database).
    case "$backend" in
        sqlite) url="sqlite://$work/sqlite2/coordinator.db" ;;
        postgres)
            db2="${db}_e2e"
            psql -qtA "$pg_admin" -c "DROP DATABASE IF EXISTS $db2" -c "CREATE DATABASE $db2" >/dev/null
            url="${pg_admin%/*}/$db2" ;;
    esac
    start_server "$url"
    pending="$(seed "$orders" "$work/orders2.txt" "EDX-E2E")"
    log "$backend: $orders orders, one message each, end to end"
    t0="$(date +%s.%N)"
    python3 - "$port" "$token" "$pending" "$work/orders2.txt" <<'EOF'
import http.client, json, sys, threading
port, token, pending, path = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
ids = [l.strip() for l in open(path) if l.strip()]
def post(chunk):
    c = http.client.HTTPConnection("127.0.0.1", port)
    for i, order in chunk:
        body = json.dumps({"detail": {"id": f"e2e-{i}", "type": "LineItemStateTransition",
            "resource": {"typeId": "order", "id": order}, "fromState": {"typeId": "state", "id": "initial"},
            "toState": {"typeId": "state", "id": pending}}})
        c.request("POST", "/commercetools/fulfill", body,
                  {"Content-Type": "application/json", "Authorization": f"Bearer {token}"})
        r = c.getresponse(); r.read()
        if r.status != 202: sys.exit(f"a message answered {r.status}")
work = list(enumerate(ids))
threads = [threading.Thread(target=post, args=(work[k::16],)) for k in range(16)]
for t in threads: t.start()
for t in threads: t.join()
EOF
    t1="$(date +%s.%N)"
    done_count=0
    for _ in $(seq 1 1200); do
        done_count="$(count_tasks "$url" "deliver:commercetools.record_fulfillment" succeeded)"
        [[ "$done_count" -ge "$orders" ]] && break
        sleep 0.1
    done
    t2="$(date +%s.%N)"
    [[ "$done_count" -ge "$orders" ]] || { tail -20 "$work/server.log" >&2; die "$backend: only $done_count of $orders orders fulfilled in 120 s"; }
    dead="$(count_tasks "$url" "lms.enroll_in_course" dead)"
    stop_server
    [[ "$backend" == postgres ]] && psql -qtA "$pg_admin" -c "DROP DATABASE IF EXISTS $db" -c "DROP DATABASE IF EXISTS $db2" >/dev/null

    fulfilled="$(python3 -c "print(round($orders / ($t2 - $t0), 1))")"
    posted="$(python3 -c "print(round($t1 - $t0, 2))")"
    total="$(python3 -c "print(round($t2 - $t0, 2))")"
    printf '%s: %s messages accepted/s (p99 %s, non-2xx %s); %s orders fulfilled end to end in %s s (posted in %s s): %s orders/s; dead enrollments %s\n' \
        "$backend" "$accepted" "$p99" "${non2xx:-0}" "$orders" "$total" "$posted" "$fulfilled" "$dead"
    [[ $first -eq 1 ]] || echo "," >>"$work/results.json"
    first=0
    printf '  "%s": {"messages_accepted_per_s": %s, "accept_p99": "%s", "non_2xx": %s, "orders": %s, "orders_posted_s": %s, "orders_fulfilled_s": %s, "orders_fulfilled_per_s": %s, "dead": %s}' \
        "$backend" "$accepted" "$p99" "${non2xx:-0}" "$orders" "$posted" "$total" "$fulfilled" "$dead" >>"$work/results.json"
done
printf '\n, "date_utc": "%s", "duration": "%s", "machine": "%s cores"\n}\n' "$(date -u +%FT%TZ)" "$duration" "$(nproc)" >>"$work/results.json"
mkdir -p "$repo/bench/results"
python3 -c 'import json, sys; json.dump(json.load(open(sys.argv[1])), open(sys.argv[2], "w"), indent=2)' "$work/results.json" "$results"
log "results: $results"
