#!/usr/bin/env bash
# End-to-end test of `switchyard submit --wait` through the real router and the real worker with
# the local driver (commands run as /bin/sh -c): exit codes for SUCCEEDED, FAILED, KILLED and
# INVALID and for a wait that timed out, logs streamed in order (also across many chunks), kill,
# --kill-on-interrupt on SIGTERM (what Airflow sends on task kill), and an Airflow-style retry
# with the same --job-id that re-attaches to the running job, which runs once.
# Needs the services of scripts/testenv (SWITCHYARD_* in the environment) and $SY_BIN.
set -uo pipefail

bin=${SY_BIN:?SY_BIN is not set}
sy=$bin/switchyard
: "${SWITCHYARD_BOOTSTRAP_SERVERS:?run under scripts/testenv}" "${SWITCHYARD_DATABASE_URL:?}"

tag=$(od -An -tx1 -N4 /dev/urandom | tr -d ' \n')
tmp=$(mktemp -d "/tmp/itest-client-e2e-XXXXXX")
db=sy_clie2e_$tag
export SWITCHYARD_TOPIC_NAMESPACE=tclie2e$tag SWITCHYARD_TOPIC_PARTITIONS=3
admin_url=${SY_DATABASE_ADMIN_URL:-$SWITCHYARD_DATABASE_URL}
owner=${SWITCHYARD_DATABASE_URL#*://}
owner=${owner%%[:@]*}
base=${SWITCHYARD_DATABASE_URL%%\?*}
query=${SWITCHYARD_DATABASE_URL#"$base"}
export SWITCHYARD_DATABASE_URL=${base%/*}/$db$query

pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null; done
  return 0
}
trap cleanup EXIT

passed=0 failed=0
ok() { passed=$((passed + 1)); echo "PASS $*"; }
bad() {
  failed=$((failed + 1))
  echo "FAIL $*"
}
check() { # check DESCRIPTION COMMAND...
  local what=$1
  shift
  if "$@"; then ok "$what"; else bad "$what"; fi
}
show() { # the output of a failed run, for the log
  echo "---- $1.out"; cat "$tmp/$1.out"; echo "---- $1.err"; grep -v rdkafka "$tmp/$1.err"; echo "----"
}
# run NAME ARGS...: switchyard ARGS with stdout/stderr in $tmp/NAME.{out,err}; sets $code
run() {
  local name=$1
  shift
  "$sy" "$@" >"$tmp/$name.out" 2>"$tmp/$name.err"
  code=$?
}
# start NAME ARGS...: the same in the background; its pid in $pid
start() {
  local name=$1
  shift
  "$sy" "$@" >"$tmp/$name.out" 2>"$tmp/$name.err" &
  pid=$!
}
wait_for() { # wait_for FILE TEXT SECONDS
  local i
  for ((i = 0; i < $3 * 10; i++)); do
    grep -qF -- "$2" "$1" 2>/dev/null && return 0
    sleep 0.1
  done
  return 1
}
expect_code() { # expect_code RUN-NAME WANT [DESCRIPTION]
  local what=${3:-$1}
  if [ "$code" -eq "$2" ]; then ok "$what exits $2"; else bad "$what exits $code, wanted $2"; show "$1"; fi
}

# ---- set-up: database, registry, router, worker ----
psql -q -v ON_ERROR_STOP=1 "$admin_url" -c "CREATE DATABASE $db OWNER $owner" >/dev/null || exit 1
"$sy" -q admin migrate >/dev/null || exit 1
"$sy" -q clusters add local1 --kind local --tags env:test >/dev/null || exit 1
"$sy" -q commands add sh --tags type:sh --spec '{"local":{"argv":["/bin/sh","-c"]}}' >/dev/null || exit 1
"$sy" -q link sh local1 >/dev/null || exit 1
start_router() { # a router's very first start in a new namespace may exit while its topics
  local try    # propagate: start it again then
  for try in 1 2 3; do
    "$bin/switchyard-router" >>"$tmp/router.log" 2>&1 &
    local p=$! i
    for ((i = 0; i < 600; i++)); do
      grep -qF "assigned " "$tmp/router.log" && { pids+=("$p"); return 0; }
      kill -0 "$p" 2>/dev/null || break
      sleep 0.1
    done
    kill "$p" 2>/dev/null
    wait "$p" 2>/dev/null
  done
  return 1
}
start_router || { echo "router did not start"; cat "$tmp/router.log"; exit 1; }
# a pattern subscription sees a new cluster topic at the next metadata refresh: make it quick
SWITCHYARD_WORKER_LOCAL_WORKDIR=$tmp/jobs SWITCHYARD_WORKER_KILL_GRACE_MS=2000 \
  "$bin/switchyard-worker" -X kafka.topic.metadata.refresh.interval.ms=1000 \
  >"$tmp/worker.log" 2>&1 &
pids+=($!)

S=(submit --cluster-tags env:test --command-tags type:sh)
run warmup "${S[@]}" --wait --wait-timeout 180s -- true # the worker joins its group
expect_code warmup 0 "first job (worker up)"

# ---- outcomes and logs ----
run ok "${S[@]}" --wait --wait-timeout 120s --job-id e2e-ok -- \
  'for i in 1 2 3 4 5; do echo "line $i"; sleep 0.2; done; echo oops >&2'
expect_code ok 0 SUCCEEDED
check "stdout is the job id, then the job's lines in order" \
  diff <(printf 'e2e-ok\nline 1\nline 2\nline 3\nline 4\nline 5\n') "$tmp/ok.out"
check "stderr stream goes to stderr" grep -qx oops "$tmp/ok.err"
check "status changes on stderr, in order" \
  bash -c "grep -o 'e2e-ok [A-Z]*' '$tmp/ok.err' | tr '\n' ' ' | grep -q 'ACCEPTED.*RESOLVED.*RUNNING.*SUCCEEDED'"
# the output comes before the outcome: the SUCCEEDED line follows "oops"
check "logs before the terminal status" \
  bash -c "grep -n -e '^oops' -e 'e2e-ok SUCCEEDED' '$tmp/ok.err' | head -1 | grep -q oops"

run many "${S[@]}" --wait --wait-timeout 120s -- 'seq 1 50000'
expect_code many 0 "many chunks"
check "50000 lines in order, none twice" diff <(seq 1 50000) <(tail -n +2 "$tmp/many.out")

run fail "${S[@]}" --wait --wait-timeout 120s -- 'echo before; exit 3'
expect_code fail 10 FAILED
check "FAILED output" grep -qx before "$tmp/fail.out"
check "FAILED exit_code" grep -q "FAILED.*exit_code=3" "$tmp/fail.err"

run invalid submit --wait --cluster-tags env:nowhere --command-tags type:sh -- true
expect_code invalid 12 INVALID

run timeout "${S[@]}" --wait --wait-timeout 3s --job-id e2e-timeout -- 'sleep 60'
expect_code timeout 13 "wait timed out"
run timeout-kill kill e2e-timeout

# ---- kill, and --kill-on-interrupt ----
start killed "${S[@]}" --wait --wait-timeout 120s --job-id e2e-kill -- 'echo started; sleep 60'
check "kill: job running" wait_for "$tmp/killed.err" "e2e-kill RUNNING" 60
run kill kill e2e-kill --reason "e2e test"
expect_code kill 0 kill
wait "$pid"
code=$?
expect_code killed 11 KILLED
check "KILLED carries the reason" grep -q "KILLED.*e2e test" "$tmp/killed.err"

start koi "${S[@]}" --wait --kill-on-interrupt --wait-timeout 120s --job-id e2e-koi -- 'sleep 60'
check "kill-on-interrupt: job running" wait_for "$tmp/koi.err" "e2e-koi RUNNING" 60
kill -TERM "$pid"
wait "$pid"
code=$?
expect_code koi 11 "--kill-on-interrupt on SIGTERM"
run koi-status status e2e-koi
check "the job was killed" grep -q "KILLED" "$tmp/koi-status.out"

# ---- an Airflow retry: same --job-id while the first try is still waiting ----
runs=$tmp/runs
R=("${S[@]}" --wait --wait-timeout 120s --job-id e2e-retry -- "echo run >>$runs; echo start; sleep 3; echo end")
start retry1 "${R[@]}"
p1=$pid
check "retry: first try running" wait_for "$tmp/retry1.err" "e2e-retry RUNNING" 60
start retry2 "${R[@]}"
p2=$pid
wait "$p1"
code=$?
expect_code retry1 0 "first try"
wait "$p2"
code=$?
expect_code retry2 0 "retry (re-attached)"
check "retry saw DUPLICATE" grep -q "this submission; following the run already routed" "$tmp/retry2.err"
check "both tries show the whole output" diff "$tmp/retry1.out" "$tmp/retry2.out"
check "the job ran once" test "$(wc -l <"$runs")" -eq 1
run retry3 "${R[@]}"
expect_code retry3 0 "retry after the end"
check "the job still ran once" test "$(wc -l <"$runs")" -eq 1

# ---- status and logs afterwards ----
run status status e2e-ok
expect_code status 0 status
check "status SUCCEEDED" grep -q "SUCCEEDED" "$tmp/status.out"
run logs logs e2e-ok
expect_code logs 0 logs
check "logs replayed" diff <(printf 'line 1\nline 2\nline 3\nline 4\nline 5\n') "$tmp/logs.out"

echo "$passed passed, $failed failed"
if [ "$failed" -ne 0 ]; then
  echo "---- worker log (tail)"; tail -n 40 "$tmp/worker.log"
  echo "---- router log (tail)"; tail -n 20 "$tmp/router.log"
fi
cleanup
pids=()
if [ "$failed" -eq 0 ]; then rm -rf "$tmp"; else echo "outputs kept in $tmp"; fi
[ "$failed" -eq 0 ]
