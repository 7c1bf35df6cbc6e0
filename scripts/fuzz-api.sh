#!/usr/bin/env bash
# A bounded schema-fuzzing run of the HTTP API: Schemathesis reads /api/openapi.json from a real
# `coordinator serve` (embedded default configuration, a fresh SQLite file, an API token) and
# sends every operation generated requests, valid and invalid. Any failed check fails the script.
#
#   scripts/fuzz-api.sh            (from anywhere; CI runs it after `cargo test`)
#
# Environment (all optional):
#   FUZZ_SEED          the Hypothesis seed (default 20261129): a failure replays with the same seed
#   FUZZ_MAX_EXAMPLES  test cases per operation and phase (default 100)
#   FUZZ_TIME_LIMIT    seconds Schemathesis may run before the run fails (default 150)
#   FUZZ_KEEP=1        keep the temporary folder (database, server log)
#   PYTHON             the Python (3.11 or newer) the venv is made with (default python3)
#   COORDINATOR_BIN    fuzz this binary instead of building target/debug/coordinator
set -euo pipefail
cd "$(dirname "$0")/.."

seed="${FUZZ_SEED:-20261129}"
max_examples="${FUZZ_MAX_EXAMPLES:-100}"
time_limit="${FUZZ_TIME_LIMIT:-150}"
python="${PYTHON:-python3}"
target_dir="${CARGO_TARGET_DIR:-target}"
venv="$target_dir/fuzz-venv"
requirements=scripts/fuzz-requirements.txt

say() { printf 'fuzz-api: %s\n' "$*"; }
fail() {
  printf 'fuzz-api: FAILED: %s\n' "$*" >&2
  exit 1
}

# --- Schemathesis, pinned (with everything it installs), in a venv under target/ -------------
# Reused while the requirements are unchanged; made again when they change.
if ! cmp -s "$requirements" "$venv/.requirements" 2>/dev/null; then
  "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' ||
    fail "$python is older than 3.11, which Schemathesis needs; set PYTHON to a newer one"
  say "installing Schemathesis into $venv"
  rm -rf "$venv"
  "$python" -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check --no-input -r "$requirements"
  cp "$requirements" "$venv/.requirements"
fi
schemathesis="$(cd "$venv/bin" && pwd)/schemathesis"
"$schemathesis" --version

# --- The binary --------------------------------------------------------------------------------
if [[ -n "${COORDINATOR_BIN:-}" ]]; then
  bin="$COORDINATOR_BIN"
else
  # A no-op, or a link, right after `cargo test --workspace`.
  cargo build -p coordinator-server --bin coordinator --locked --quiet
  bin="$target_dir/debug/coordinator"
fi
[[ -x "$bin" ]] || fail "no executable at $bin"

# --- The server: fresh SQLite file, embedded default config, random credentials ---------------
work="$(mktemp -d "${TMPDIR:-/tmp}/coordinator-fuzz.XXXXXX")"
log="$work/server.log"
server_pid=""
cleanup() {
  if [[ -n "$server_pid" ]] && kill -0 "$server_pid" 2>/dev/null; then
    kill -KILL "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  if [[ "${FUZZ_KEEP:-}" == 1 ]]; then
    say "kept $work"
  else
    rm -rf "$work"
  fi
}
trap cleanup EXIT

token="fuzz-$(od -An -N24 -tx1 /dev/urandom | tr -d ' \n')"
webhook_secret="whsec-$(od -An -N24 -tx1 /dev/urandom | tr -d ' \n')"

# Port 0: the system picks a free port, which the server logs (no race with another process).
# The caller's COORDINATOR_* variables are dropped, so that the embedded default configuration is
# what runs; RUST_LOG is pinned so that the "listening on" line is logged whatever the caller's is.
unset_caller=()
while IFS= read -r name; do
  unset_caller+=(-u "$name")
done < <(compgen -e | grep '^COORDINATOR_' || true)
env "${unset_caller[@]}" \
  RUST_LOG=info \
  COORDINATOR__SERVER__BIND=127.0.0.1:0 \
  COORDINATOR__STORAGE__URL="sqlite://$work/coordinator.db" \
  COORDINATOR__AUTH__API_TOKENS="[\"$token\"]" \
  COORDINATOR__EXTENSION__DEMO__WEBHOOK_SECRET="$webhook_secret" \
  "$bin" serve >"$log" 2>&1 &
server_pid=$!

server_log_tail() {
  echo "---- last lines of the server log ($log) ----" >&2
  tail -n 40 "$log" >&2 || true
}

base=""
for _ in $(seq 1 300); do
  if ! kill -0 "$server_pid" 2>/dev/null; then
    server_log_tail
    fail "coordinator serve exited before it listened"
  fi
  address="$(grep -o 'listening on http://127\.0\.0\.1:[0-9]*' "$log" | head -n 1 || true)"
  if [[ -n "$address" ]]; then
    base="${address#listening on }"
    break
  fi
  sleep 0.1
done
[[ -n "$base" ]] || { server_log_tail; fail "coordinator serve did not listen within 30 s"; }

ready=""
for _ in $(seq 1 100); do
  if curl -fsS -o /dev/null "$base/ready" 2>/dev/null; then
    ready=1
    break
  fi
  sleep 0.1
done
[[ -n "$ready" ]] || { server_log_tail; fail "$base/ready did not answer 200 within 10 s"; }
say "coordinator serve (pid $server_pid) is ready at $base"

# --- The run -----------------------------------------------------------------------------------
# Checks: all of them. Beyond "no 5xx" and "every status, content type and body is the one the
# document declares", they hold the document to what the server really accepts: a request the
# schema calls valid must not be refused with 400/422 (positive_data_acceptance), one it calls
# invalid must be refused (negative_data_rejection), a request without the token must get 401
# (ignored_auth), an undeclared method 405 with `Allow`. max_response_time stays off: a debug
# build on a shared CI machine has no latency to promise.
#
# Phases: all four. `--mode all` sends invalid requests as well as valid ones (malformed input
# must be a 4xx problem, never a 5xx). Stateful testing chains operations through the links
# Schemathesis infers from responses (an order's dispatch id and task ids, then GET, retry and
# cancel them), which is where the task routes meet real ids and answer 200 and 409 rather
# than only 404; its side effects stay in this run's throwaway database.
#
# Bounds: --max-examples per operation and phase, a fixed seed (a failure is printed with the
# command that reproduces it), no example database (no state carried between runs), and a
# wall-clock limit. `--max-time` is not used: it would make every run last that long, drawing
# new cases until it expires. It runs in the temporary folder, where it keeps its crash cache
# (`.schemathesis/`), so that nothing is written into the tree.
# Not fuzzed yet: the commercetools message routes and the sandbox's order seeding. Their
# documented request schemas are looser than what they validate (every envelope field is
# optional in the schema; the routes require detail.id, detail.resource.id and the rest), so
# the positive-data check reports schema-valid messages refused with 400. Making the schemas
# exact is tracked in issue 9's notes.
excluded_paths='^/(commercetools/|sandbox/commercetools/_orders$)'

set +e
(cd "$work" && timeout --signal=INT --kill-after=20 "$time_limit" \
  "$schemathesis" --no-color run "$base/api/openapi.json" \
  --header "Authorization: Bearer $token" \
  --checks all \
  --phases examples,coverage,fuzzing,stateful \
  --mode all \
  --max-examples "$max_examples" \
  --seed "$seed" \
  --generation-database none \
  --workers 2 \
  --request-timeout 20 \
  --continue-on-failure \
  --exclude-path-regex "$excluded_paths")
status=$?
set -e

# --- Stop the server: SIGTERM, and it must exit 0 ----------------------------------------------
if ! kill -TERM "$server_pid" 2>/dev/null; then
  server_log_tail
  fail "coordinator serve died during the run (Schemathesis exit $status)"
fi
stopped=""
for _ in $(seq 1 600); do
  if ! kill -0 "$server_pid" 2>/dev/null; then
    stopped=1
    break
  fi
  sleep 0.1
done
if [[ -z "$stopped" ]]; then
  server_log_tail
  fail "coordinator serve did not stop within 60 s of SIGTERM"
fi
server_status=0
wait "$server_pid" || server_status=$?
server_pid=""

if [[ $status -eq 124 || $status -eq 137 ]]; then
  server_log_tail
  fail "Schemathesis did not finish within FUZZ_TIME_LIMIT=$time_limit s (seed $seed)"
fi
if [[ $status -ne 0 ]]; then
  server_log_tail
  fail "Schemathesis found failures (exit $status; seed $seed, $max_examples examples): see above"
fi
if [[ $server_status -ne 0 ]]; then
  server_log_tail
  fail "coordinator serve exited with $server_status after SIGTERM, not 0"
fi
say "no failure (seed $seed, $max_examples examples per operation); the server stopped cleanly"
