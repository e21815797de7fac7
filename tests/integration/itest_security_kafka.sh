#!/usr/bin/env bash
# itest_security_kafka: Switchyard over the broker's secure listeners (scripts/testenv), set up
# with nothing but kafka.* configuration — the router from a config file, the worker from
# SWITCHYARD_KAFKA_* variables, the CLI from -X options; the plaintext listener is never named.
#   - SASL_SSL with SCRAM-SHA-512, and SSL with client certificates (mutual TLS: the router and
#     the CLI with a PEM certificate and an encrypted key, the worker with a PKCS#12 keystore):
#     a local job runs end to end through router and worker and `submit --wait` streams its
#     output and exits 0;
#   - refusals fail within broker.timeout.ms with the broker's reason, not a hang: a wrong SASL
#     password and a missing client certificate (CLI exit 7, router and worker exit 1), and a
#     broker certificate the client does not trust (no ssl.ca.location: exit 7);
#   - every process runs at debug level (-v; one CLI run with librdkafka's debug=conf,security
#     too) and no password (SASL, key, keystore, database, the wrong one, AWS secret key and
#     session token) appears in anything they print, nor in `switchyard config`.
# Needs the services of scripts/testenv (SY_KAFKA_*, SY_TLS_* in the environment) and $SY_BIN.
set -uo pipefail

bin=${SY_BIN:?SY_BIN is not set}
sy=$bin/switchyard
: "${SY_KAFKA_SASL_SSL_BOOTSTRAP:?run under scripts/testenv (SY_KAFKA_SASL_SSL_BOOTSTRAP)}"
: "${SY_KAFKA_SSL_BOOTSTRAP:?}" "${SY_TLS_CA:?}" "${SWITCHYARD_DATABASE_URL:?}"

tag=$(od -An -tx1 -N4 /dev/urandom | tr -d ' \n')
tmp=$(mktemp -d "/tmp/itest-security-kafka-XXXXXX")
db=sy_seckafka_$tag
admin_url=${SY_DATABASE_ADMIN_URL:-$SWITCHYARD_DATABASE_URL}
owner=${SWITCHYARD_DATABASE_URL#*://}
owner=${owner%%[:@]*}
base=${SWITCHYARD_DATABASE_URL%%\?*}
query=${SWITCHYARD_DATABASE_URL#"$base"}
export SWITCHYARD_DATABASE_URL=${base%/*}/$db$query
export SWITCHYARD_TOPIC_PARTITIONS=3
# The plaintext listener must not be reachable through a default: every process is given the
# secure address itself.
unset SWITCHYARD_BOOTSTRAP_SERVERS
# Secrets the processes hold that must never be printed; an AWS session token too.
export AWS_SESSION_TOKEN=itestSessionToken$tag
wrong=wrongSaslPassword$tag
db_password=${SWITCHYARD_DATABASE_URL#*://*:}
db_password=${db_password%%@*}
secrets=("$SY_KAFKA_SASL_PASSWORD" "$SY_TLS_CLIENT_KEY_PASSWORD" "$SY_TLS_CLIENT_P12_PASSWORD"
  "$wrong" "$db_password" "$AWS_SESSION_TOKEN")
[ -n "${AWS_SECRET_ACCESS_KEY:-}" ] && secrets+=("$AWS_SECRET_ACCESS_KEY")

pids=()
cleanup() {
  local p
  for p in "${pids[@]+"${pids[@]}"}"; do kill -TERM "$p" 2>/dev/null; done
  for p in "${pids[@]+"${pids[@]}"}"; do wait "$p" 2>/dev/null; done
  pids=()
  return 0
}
trap cleanup EXIT

passed=0 failed=0
ok() { passed=$((passed + 1)); echo "PASS $*"; }
bad() { failed=$((failed + 1)); echo "FAIL $*"; }
check() { # check DESCRIPTION COMMAND...
  local what=$1
  shift
  if "$@"; then ok "$what"; else bad "$what"; fi
}
wait_for() { # wait_for FILE TEXT SECONDS
  local i
  for ((i = 0; i < $3 * 10; i++)); do
    grep -qF -- "$2" "$1" 2>/dev/null && return 0
    sleep 0.1
  done
  return 1
}
# A router's very first start in a new namespace may exit while its topics propagate: start it
# again then. start_router LOG ARGS...; its pid in $pid.
start_router() {
  local log=$1 i
  shift
  for _ in 1 2 3; do
    "$bin/switchyard-router" "$@" >>"$log" 2>&1 &
    pid=$!
    for ((i = 0; i < 600; i++)); do
      grep -qsF "assigned " "$log" && { pids+=("$pid"); return 0; }
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
  done
  return 1
}
stop() { # stop PID: SIGTERM, and wait for it; its exit code in $code
  kill -TERM "$1" 2>/dev/null
  wait "$1" 2>/dev/null
  code=$?
  local p left=()
  for p in "${pids[@]}"; do [ "$p" = "$1" ] || left+=("$p"); done
  pids=("${left[@]+"${left[@]}"}")
}
# expect_refusal NAME WANT-EXIT REASON: the run's exit code and that its stderr names the
# refusal and the broker's reason; ran_s is how long it took.
expect_refusal() {
  local name=$1 want=$2 reason=$3 code
  code=$(cat "$tmp/$name.rc")
  if [ "$code" -eq "$want" ]; then ok "$name exits $want"; else
    bad "$name exits $code, wanted $want"
    grep -v rdkafka "$tmp/$name.err" | tail -n 5
  fi
  check "$name: the error names the refusal" grep -q "refused the connection" "$tmp/$name.err"
  check "$name: the error gives the broker's reason ($reason)" grep -q "$reason" "$tmp/$name.err"
  check "$name: within broker.timeout.ms (3 s) + start-up, not a hang ($(cat "$tmp/$name.s")s)" \
    test "$(cat "$tmp/$name.s")" -le 20
}
# refuse NAME PROGRAM ARGS...: runs a program that must be refused, in the background, bounded by
# `timeout 60` (a hang ends as 124); exit code in $tmp/NAME.rc, seconds in $tmp/NAME.s.
refuse() {
  local name=$1
  shift
  (
    s=$SECONDS
    timeout 60 "$@" >"$tmp/$name.out" 2>"$tmp/$name.err"
    echo $? >"$tmp/$name.rc"
    echo $((SECONDS - s)) >"$tmp/$name.s"
  ) &
}

# ---- set-up: a database with a local cluster and a command ---------------------------------
psql -q -v ON_ERROR_STOP=1 "$admin_url" -c "CREATE DATABASE $db OWNER $owner" >/dev/null || exit 1
"$sy" -q admin migrate >/dev/null || exit 1
"$sy" -q clusters add local1 --kind local --tags env:sec >/dev/null || exit 1
"$sy" -q commands add sh --tags type:sh --spec '{"local":{"argv":["/bin/sh","-c"]}}' >/dev/null ||
  exit 1
"$sy" -q link sh local1 >/dev/null || exit 1

# ---- the two listeners: the same kafka.* settings three ways ---------------------------------
# kafka_settings MODE: key=value lines (no bootstrap) for the PEM form of the credentials.
kafka_settings() {
  case $1 in
    sasl)
      printf '%s\n' "kafka.security.protocol=SASL_SSL" "kafka.ssl.ca.location=$SY_TLS_CA" \
        "kafka.sasl.mechanism=$SY_KAFKA_SASL_MECHANISM" \
        "kafka.sasl.username=$SY_KAFKA_SASL_USERNAME" "kafka.sasl.password=$SY_KAFKA_SASL_PASSWORD"
      ;;
    mtls)
      printf '%s\n' "kafka.security.protocol=SSL" "kafka.ssl.ca.location=$SY_TLS_CA" \
        "kafka.ssl.certificate.location=$SY_TLS_CLIENT_CERT" \
        "kafka.ssl.key.location=$SY_TLS_CLIENT_KEY" \
        "kafka.ssl.key.password=$SY_TLS_CLIENT_KEY_PASSWORD"
      ;;
  esac
}
# worker_env MODE: the same for the worker as SWITCHYARD_KAFKA_* variables; with mutual TLS
# the worker presents the PKCS#12 keystore instead of the PEM pair.
worker_env() {
  case $1 in
    sasl)
      echo SWITCHYARD_KAFKA_SECURITY_PROTOCOL=SASL_SSL SWITCHYARD_KAFKA_SSL_CA_LOCATION="$SY_TLS_CA" \
        SWITCHYARD_KAFKA_SASL_MECHANISM="$SY_KAFKA_SASL_MECHANISM" \
        SWITCHYARD_KAFKA_SASL_USERNAME="$SY_KAFKA_SASL_USERNAME" \
        SWITCHYARD_KAFKA_SASL_PASSWORD="$SY_KAFKA_SASL_PASSWORD"
      ;;
    mtls)
      echo SWITCHYARD_KAFKA_SECURITY_PROTOCOL=SSL SWITCHYARD_KAFKA_SSL_CA_LOCATION="$SY_TLS_CA" \
        SWITCHYARD_KAFKA_SSL_KEYSTORE_LOCATION="$SY_TLS_CLIENT_P12" \
        SWITCHYARD_KAFKA_SSL_KEYSTORE_PASSWORD="$SY_TLS_CLIENT_P12_PASSWORD"
      ;;
  esac
}

for mode in sasl mtls; do
  case $mode in
    sasl) bootstrap=$SY_KAFKA_SASL_SSL_BOOTSTRAP ;;
    mtls) bootstrap=$SY_KAFKA_SSL_BOOTSTRAP ;;
  esac
  ns=tsec$mode$tag
  echo "== $mode: $bootstrap (namespace $ns)"
  # router: a config file
  {
    echo "bootstrap.servers = $bootstrap"
    echo "topic.namespace = $ns"
    kafka_settings $mode | sed 's/=/ = /'
  } >"$tmp/router-$mode.conf"
  # CLI: -X options
  X=(-X "bootstrap.servers=$bootstrap" -X "topic.namespace=$ns")
  while read -r kv; do X+=(-X "$kv"); done < <(kafka_settings $mode)
  # worker: environment (read into an array: the paths and passwords hold no spaces)
  read -r -a WENV <<<"$(worker_env $mode)"

  if ! start_router "$tmp/router-$mode.log" -v -c "$tmp/router-$mode.conf"; then
    bad "$mode: router did not start"
    tail -n 30 "$tmp/router-$mode.log"
    continue
  fi
  router=$pid
  logfmt=text asan=${ASAN_OPTIONS:-} lsan=${LSAN_OPTIONS:-}
  if [ $mode = mtls ]; then
    logfmt=json # the JSON log format is checked for secrets too
    # librdkafka 2.0.2 leaks the EVP_PKEY and X509 it allocates before PKCS12_parse when it
    # loads ssl.keystore.location (about 2 KB per client, once, in rd_kafka_new). In sanitizer
    # builds only this process, the keystore's user, gets that suppressed; libcrypto has no
    # frame pointers, so the stacks the patterns need take full unwinding.
    cat "$(dirname "$0")/../lsan.supp" >"$tmp/lsan-keystore.supp"
    printf '%s\n' "leak:EVP_PKEY_new" "leak:ASN1_item_new" >>"$tmp/lsan-keystore.supp"
    asan="${asan:+$asan:}fast_unwind_on_malloc=0"
    lsan="suppressions=$tmp/lsan-keystore.supp:print_suppressions=0"
  fi
  env "${WENV[@]}" ASAN_OPTIONS="$asan" LSAN_OPTIONS="$lsan" \
    SWITCHYARD_BOOTSTRAP_SERVERS="$bootstrap" SWITCHYARD_TOPIC_NAMESPACE="$ns" \
    SWITCHYARD_WORKER_LOCAL_WORKDIR="$tmp/jobs" SWITCHYARD_LOG_FORMAT=$logfmt \
    "$bin/switchyard-worker" -v -X kafka.topic.metadata.refresh.interval.ms=1000 \
    >"$tmp/worker-$mode.log" 2>&1 &
  worker=$!
  pids+=("$worker")

  "$sy" -v "${X[@]}" submit --cluster-tags env:sec --command-tags type:sh --job-id "sec-$mode-$tag" \
    --wait --wait-timeout 180s -- "echo hello over $mode" >"$tmp/submit-$mode.out" 2>"$tmp/submit-$mode.err"
  code=$?
  if [ $code -eq 0 ]; then ok "$mode: a job ran end to end (submit --wait exits 0)"; else
    bad "$mode: submit --wait exits $code"
    grep -v rdkafka "$tmp/submit-$mode.err" | tail -n 10
  fi
  check "$mode: its output came back over Kafka" grep -qx "hello over $mode" "$tmp/submit-$mode.out"
  # librdkafka's own debug output too: its configuration dump and the SASL/TLS exchange
  "$sy" -v "${X[@]}" -X kafka.debug=conf,security status "sec-$mode-$tag" \
    >"$tmp/status-$mode.out" 2>"$tmp/status-$mode.err"
  check "$mode: status SUCCEEDED" grep -q SUCCEEDED "$tmp/status-$mode.out"
  "$sy" -v "${X[@]}" config >"$tmp/config-$mode.out" 2>&1
  check "$mode: switchyard config shows the kafka.* settings" \
    grep -q "^kafka.security.protocol = " "$tmp/config-$mode.out"
  stop "$worker"
  check "$mode: the worker stops cleanly (exit $code)" test "$code" -eq 0
  stop "$router"
  check "$mode: the router stops cleanly (exit $code)" test "$code" -eq 0
done

# ---- refusals -----------------------------------------------------------------------------
# Three clients at once per case, each waiting up to broker.timeout.ms=3000.
T=(-X broker.timeout.ms=3000 -X "topic.namespace=tsecbad$tag")
sasl_bad=(-X "bootstrap.servers=$SY_KAFKA_SASL_SSL_BOOTSTRAP" -X kafka.security.protocol=SASL_SSL
  -X "kafka.ssl.ca.location=$SY_TLS_CA" -X "kafka.sasl.mechanism=$SY_KAFKA_SASL_MECHANISM"
  -X "kafka.sasl.username=$SY_KAFKA_SASL_USERNAME" -X "kafka.sasl.password=$wrong")
refuse cli-wrong-password "$sy" -v "${T[@]}" "${sasl_bad[@]}" submit --cluster-tags env:sec \
  --command-tags type:sh --wait -- true
refuse router-wrong-password "$bin/switchyard-router" -v "${T[@]}" "${sasl_bad[@]}"
refuse worker-wrong-password "$bin/switchyard-worker" -v "${T[@]}" "${sasl_bad[@]}"
wait
expect_refusal cli-wrong-password 7 "SASL authentication error"
expect_refusal router-wrong-password 1 "SASL authentication error"
expect_refusal worker-wrong-password 1 "SASL authentication error"

no_cert=(-X "bootstrap.servers=$SY_KAFKA_SSL_BOOTSTRAP" -X kafka.security.protocol=SSL
  -X "kafka.ssl.ca.location=$SY_TLS_CA")
refuse cli-no-client-cert "$sy" -v "${T[@]}" "${no_cert[@]}" status some-job
refuse router-no-client-cert "$bin/switchyard-router" -v "${T[@]}" "${no_cert[@]}"
refuse worker-no-client-cert "$bin/switchyard-worker" -v "${T[@]}" "${no_cert[@]}"
# the broker's certificate is from a CA the client was not told to trust
refuse cli-untrusted-broker "$sy" -v "${T[@]}" -X "bootstrap.servers=$SY_KAFKA_SASL_SSL_BOOTSTRAP" \
  -X kafka.security.protocol=SASL_SSL -X "kafka.sasl.mechanism=$SY_KAFKA_SASL_MECHANISM" \
  -X "kafka.sasl.username=$SY_KAFKA_SASL_USERNAME" -X "kafka.sasl.password=$SY_KAFKA_SASL_PASSWORD" \
  status some-job
wait
expect_refusal cli-no-client-cert 7 "alert bad certificate\|certificate required"
expect_refusal router-no-client-cert 1 "alert bad certificate\|certificate required"
expect_refusal worker-no-client-cert 1 "alert bad certificate\|certificate required"
expect_refusal cli-untrusted-broker 7 "certificate verify failed"

# ---- no secret in anything printed ----------------------------------------------------------
leaks=0
for s in "${secrets[@]}"; do
  [ ${#s} -ge 6 ] || continue
  if grep -rlF --include='*.log' --include='*.out' --include='*.err' -e "$s" "$tmp"; then
    leaks=$((leaks + 1))
    echo "  a secret (${#s} characters, starting ${s:0:3}) was printed in the files above"
  fi
done
check "no password, key password, keystore password or AWS secret in any output (${#secrets[@]} secrets, $(cat "$tmp"/*.log "$tmp"/*.out "$tmp"/*.err | wc -l) lines at debug level)" \
  test "$leaks" -eq 0
check "no sanitizer report in any output (ASan/UBSan builds)" \
  test -z "$(grep -rlE 'AddressSanitizer|LeakSanitizer|runtime error:' "$tmp")"
check "the router ran at debug level" grep -q ' debug ' "$tmp/router-sasl.log"
check "the worker ran at debug level (JSON lines)" grep -q '"level":"debug"' "$tmp/worker-mtls.log"
check "the CLI ran at debug level" grep -q ' debug ' "$tmp/submit-sasl.err"

echo "$passed passed, $failed failed"
cleanup
if [ "$failed" -eq 0 ]; then rm -rf "$tmp"; else
  echo "---- worker log (tail)"; tail -n 20 "$tmp"/worker-*.log
  echo "---- router log (tail)"; tail -n 20 "$tmp"/router-*.log
  echo "outputs kept in $tmp"
fi
[ "$failed" -eq 0 ]
