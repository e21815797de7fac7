#!/usr/bin/env bash
# itest_testenv_script: scripts/testenv itself — `status` sees the four services, `up` again only
# reprints the environment, and `restart kafka` / `restart postgres` (what chaos tests use)
# bring each back on the same port with its data: a message produced before the broker restart
# is read after it (and the SASL_SSL and mutual-TLS listeners answer with the exported
# credentials), a row written before the database restart is still there (and TLS is on).
set -euo pipefail
cd "$(dirname "$0")/../.."
fail() { echo "itest_testenv_script: FAILED: $*" >&2; exit 1; }
: "${SY_TESTENV_DIR:?run under scripts/testenv (SY_TESTENV_DIR is not set)}"
: "${SWITCHYARD_BOOTSTRAP_SERVERS:?}" "${SWITCHYARD_DATABASE_URL:?}"
PSQL=$(command -v psql || echo /usr/lib/postgresql/15/bin/psql)
tag=$$-$RANDOM

status=$(scripts/testenv status) || fail "status says not everything runs: $status"
for s in kafka postgres registry aws; do
  grep -Eq "^  $s +running" <<<"$status" || fail "status does not show $s running: $status"
done
again=$(scripts/testenv up 2>/dev/null)
grep -qx "export SWITCHYARD_BOOTSTRAP_SERVERS=$SWITCHYARD_BOOTSTRAP_SERVERS" <<<"$again" ||
  fail "up on a running environment printed other addresses: $again"
[ "$(scripts/testenv status)" = "$status" ] || fail "up on a running environment restarted something"

# Kafka: a message survives a broker restart; the broker comes back at the same address.
topic=itest-testenv-restart-$tag
echo "before-restart-$tag" | kcat -P -b "$SWITCHYARD_BOOTSTRAP_SERVERS" -t "$topic" -X acks=all ||
  fail "kcat could not produce"
scripts/testenv restart kafka
got=$(kcat -C -b "$SWITCHYARD_BOOTSTRAP_SERVERS" -t "$topic" -o beginning -c 1 -e -q -m 30) ||
  fail "kcat could not consume after the restart"
[ "$got" = "before-restart-$tag" ] || fail "after restart read \"$got\""
# The secure listeners come back too, with the same certificates and the SCRAM user (it lives in
# the metadata log): metadata over SASL_SSL and over mutual TLS with the exported credentials.
: "${SY_KAFKA_SASL_SSL_BOOTSTRAP:?}" "${SY_KAFKA_SSL_BOOTSTRAP:?}" "${SY_TLS_CA:?}"
kcat -L -b "$SY_KAFKA_SASL_SSL_BOOTSTRAP" -m 30 -X security.protocol=SASL_SSL \
  -X ssl.ca.location="$SY_TLS_CA" -X sasl.mechanism="$SY_KAFKA_SASL_MECHANISM" \
  -X sasl.username="$SY_KAFKA_SASL_USERNAME" -X sasl.password="$SY_KAFKA_SASL_PASSWORD" \
  -t "$topic" >/dev/null || fail "SASL_SSL listener after the restart"
kcat -L -b "$SY_KAFKA_SSL_BOOTSTRAP" -m 30 -X security.protocol=SSL -X ssl.ca.location="$SY_TLS_CA" \
  -X ssl.certificate.location="$SY_TLS_CLIENT_CERT" -X ssl.key.location="$SY_TLS_CLIENT_KEY" \
  -X ssl.key.password="$SY_TLS_CLIENT_KEY_PASSWORD" -t "$topic" >/dev/null ||
  fail "mutual-TLS listener after the restart"

# PostgreSQL: a committed row survives a restart, and TLS is still on (the TLS-only role).
table=itest_restart_${tag//-/_}
"$PSQL" -X -q -v ON_ERROR_STOP=1 "$SWITCHYARD_DATABASE_URL" \
  -c "CREATE TABLE $table (v text); INSERT INTO $table VALUES ('kept')"
scripts/testenv restart postgres
got=$("$PSQL" -X -qtA -v ON_ERROR_STOP=1 "$SWITCHYARD_DATABASE_URL" -c "SELECT v FROM $table")
"$PSQL" -X -q "$SWITCHYARD_DATABASE_URL" -c "DROP TABLE $table"
[ "$got" = kept ] || fail "after restart the row reads \"$got\""
: "${SY_DATABASE_TLS_URL:?}"
got=$("$PSQL" -X -qtA -v ON_ERROR_STOP=1 "$SY_DATABASE_TLS_URL" \
  -c "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()") ||
  fail "the TLS-only role cannot connect after the restart"
[ "$got" = t ] || fail "after restart pg_stat_ssl says ssl = \"$got\""

scripts/testenv status >/dev/null || fail "not everything runs after the restarts"
echo "itest_testenv_script: ok"
