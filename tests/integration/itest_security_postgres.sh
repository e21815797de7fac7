#!/usr/bin/env bash
# itest_security_postgres: router, worker and CLI reach PostgreSQL with password authentication
# over TLS, configured by nothing but database.url
# (postgresql://...?sslmode=verify-full&sslrootcert=<CA>), as the role switchyard_tls, which
# scripts/testenv's pg_hba.conf admits only over TLS:
#   - the CLI migrates and fills the registry, router and worker run a job end to end, and
#     pg_stat_ssl shows the router's and the worker's sessions encrypted;
#   - the same URL without TLS (sslmode=disable) is refused (exit 7), a server certificate from
#     another CA is refused, and so is a host name the certificate does not name (verify-full);
#   - a wrong password fails at once with exit 7 (CLI) / 1 (worker) and a clear message that
#     contains neither the wrong password nor the right one;
#   - nothing any process printed at debug level (-v) contains the password.
# Needs the services of scripts/testenv (SY_DATABASE_TLS_URL, SY_DATABASE_ADMIN_URL) and $SY_BIN.
set -uo pipefail

bin=${SY_BIN:?SY_BIN is not set}
sy=$bin/switchyard
: "${SY_DATABASE_TLS_URL:?run under scripts/testenv (SY_DATABASE_TLS_URL)}"
: "${SY_DATABASE_ADMIN_URL:?}" "${SWITCHYARD_BOOTSTRAP_SERVERS:?}"

tag=$(od -An -tx1 -N4 /dev/urandom | tr -d ' \n')
tmp=$(mktemp -d "/tmp/itest-security-postgres-XXXXXX")
db=sy_secpg_$tag
export SWITCHYARD_TOPIC_NAMESPACE=tsecpg$tag SWITCHYARD_TOPIC_PARTITIONS=3
# postgresql://ROLE:PASSWORD@HOST:PORT/DB?QUERY
rest=${SY_DATABASE_TLS_URL#*://}
role=${rest%%:*}
password=${rest#*:}
password=${password%%@*}
hostport=${rest#*@}
hostport=${hostport%%/*}
query=${SY_DATABASE_TLS_URL#*\?}
wrong=wrongDbPassw0rd$tag
url() { # url APPLICATION-NAME [PASSWORD [QUERY [HOST:PORT]]]: the TLS URL of our database
  echo "postgresql://$role:${2:-$password}@${4:-$hostport}/$db?${3:-$query}&application_name=$1"
}
SWITCHYARD_DATABASE_URL=$(url "sytls-cli-$tag")
export SWITCHYARD_DATABASE_URL
export PGCONNECT_TIMEOUT=10

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
# run NAME ARGS...: switchyard -v ARGS, output in $tmp/NAME.{out,err}, exit code in $code
run() {
  local name=$1
  shift
  timeout 60 "$sy" -v "$@" >"$tmp/$name.out" 2>"$tmp/$name.err"
  code=$?
}
expect_code() { # expect_code NAME WANT DESCRIPTION
  if [ "$code" -eq "$2" ]; then ok "$3 (exit $2)"; else
    bad "$3: exit $code, wanted $2"
    tail -n 5 "$tmp/$1.err"
  fi
}
psql_admin() { psql -X -qtA -v ON_ERROR_STOP=1 "$SY_DATABASE_ADMIN_URL" -c "$1"; }

# ---- the CLI: registry set-up over TLS, as a role that may only use TLS ----------------------
psql_admin "CREATE DATABASE $db OWNER $role" >/dev/null || exit 1
run migrate admin migrate
expect_code migrate 0 "CLI: admin migrate over TLS"
run cluster clusters add local1 --kind local --tags env:sectls
expect_code cluster 0 "CLI: clusters add over TLS"
run command commands add sh --tags type:sh --spec '{"local":{"argv":["/bin/sh","-c"]}}'
expect_code command 0 "CLI: commands add over TLS"
run link link sh local1
expect_code link 0 "CLI: link over TLS"

run no-tls -X "database.url=$(url "sytls-plain-$tag" "$password" sslmode=disable)" admin version
expect_code no-tls 7 "the same role without TLS is refused"
check "... by pg_hba.conf, for want of encryption" grep -q "pg_hba.conf rejects.*no encryption" "$tmp/no-tls.err"

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$tmp/other-ca.key" \
  -out "$tmp/other-ca.pem" -days 1 -subj "/CN=another CA" 2>/dev/null
run other-ca -X "database.url=$(url "sytls-otherca-$tag" "$password" \
  "sslmode=verify-full&sslrootcert=$tmp/other-ca.pem")" admin version
expect_code other-ca 7 "a server certificate from another CA is refused"
check "... as not verified" grep -q "certificate verify failed" "$tmp/other-ca.err"
# the right CA, but connecting by a name the certificate does not carry (hostaddr: where to go)
run wrong-name -X "database.url=$(url "sytls-name-$tag" "$password" "$query&hostaddr=127.0.0.1" \
  "db.example.invalid:${hostport##*:}")" admin version
expect_code wrong-name 7 "verify-full: a host name the certificate does not name is refused"
check "... naming the mismatch" grep -q "does not match host name" "$tmp/wrong-name.err"

# ---- wrong password: fails at once, the password in no message ------------------------------
s=$SECONDS
run wrong-password -X "database.url=$(url "sytls-wrong-$tag" "$wrong")" admin version
expect_code wrong-password 7 "CLI: a wrong password is refused"
check "CLI: ... at once ($((SECONDS - s)) s)" test $((SECONDS - s)) -le 10
check "CLI: ... with a clear message" grep -q "password authentication failed for user \"$role\"" \
  "$tmp/wrong-password.err"
s=$SECONDS
SWITCHYARD_DATABASE_URL=$(url "sytls-wrongw-$tag" "$wrong") timeout 60 "$bin/switchyard-worker" -v \
  >"$tmp/worker-wrong-password.log" 2>&1
code=$?
check "worker: a wrong password ends it (exit $code, $((SECONDS - s)) s)" \
  test "$code" -eq 1 -a $((SECONDS - s)) -le 10
check "worker: ... with a clear message" grep -q "PostgreSQL refused the connection.*password authentication failed" \
  "$tmp/worker-wrong-password.log"

# ---- router and worker over TLS: a job end to end, sessions encrypted -----------------------
SWITCHYARD_DATABASE_URL=$(url "sytls-router-$tag") "$bin/switchyard-router" -v >"$tmp/router.log" 2>&1 &
router=$!
pids+=("$router")
for ((i = 0; i < 600; i++)); do
  grep -qsF "assigned " "$tmp/router.log" && break
  kill -0 "$router" 2>/dev/null || break
  sleep 0.1
done
check "router: up with its registry read over TLS" grep -q "registry loaded: version [1-9]" "$tmp/router.log"
SWITCHYARD_DATABASE_URL=$(url "sytls-worker-$tag") SWITCHYARD_WORKER_LOCAL_WORKDIR=$tmp/jobs \
  "$bin/switchyard-worker" -v -X kafka.topic.metadata.refresh.interval.ms=1000 >"$tmp/worker.log" 2>&1 &
pids+=($!)
run job submit --cluster-tags env:sectls --command-tags type:sh --job-id "sectls-$tag" --wait \
  --wait-timeout 180s -- 'echo ledger over TLS'
expect_code job 0 "a job ran end to end (the worker's ledger over TLS)"
check "... with its output" grep -qx "ledger over TLS" "$tmp/job.out"

sessions=$(psql_admin "SELECT a.application_name, s.ssl, s.version FROM pg_stat_activity a
  JOIN pg_stat_ssl s USING (pid) WHERE a.datname = '$db' ORDER BY 1")
while read -r line; do echo "  session: $line"; done <<<"$sessions"
check "router: its session is encrypted (pg_stat_ssl)" grep -q "^sytls-router-$tag|t|TLSv1\.[23]$" <<<"$sessions"
check "worker: its session is encrypted (pg_stat_ssl)" grep -q "^sytls-worker-$tag|t|TLSv1\.[23]$" <<<"$sessions"
check "no session of this database is unencrypted" test -z "$(grep '|f|' <<<"$sessions")"
for p in "${pids[@]}"; do
  kill -TERM "$p"
  wait "$p"
  code=$?
  check "$([ "$p" = "$router" ] && echo router || echo worker): stops cleanly (exit $code)" \
    test "$code" -eq 0
done
pids=()

# ---- no password in anything printed ----------------------------------------------------------
leaks=0
for s in "$password" "$wrong"; do
  if grep -rlF --include='*.log' --include='*.out' --include='*.err' -e "$s" "$tmp"; then
    leaks=$((leaks + 1))
  fi
done
check "no password (right or wrong) in any output ($(cat "$tmp"/*.log "$tmp"/*.out "$tmp"/*.err | wc -l) lines at debug level)" \
  test "$leaks" -eq 0
check "the outputs are at debug level" grep -q ' debug ' "$tmp/worker.log"
check "no sanitizer report in any output (ASan/UBSan builds)" \
  test -z "$(grep -rlE 'AddressSanitizer|LeakSanitizer|runtime error:' "$tmp")"

echo "$passed passed, $failed failed"
if [ "$failed" -eq 0 ]; then rm -rf "$tmp"; else
  echo "---- worker log (tail)"; tail -n 20 "$tmp/worker.log"
  echo "---- router log (tail)"; tail -n 20 "$tmp/router.log"
  echo "outputs kept in $tmp"
fi
[ "$failed" -eq 0 ]
