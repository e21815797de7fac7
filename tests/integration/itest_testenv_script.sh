#!/usr/bin/env bash
# itest_testenv_script: scripts/testenv itself — `status` sees the four services, `up` again only
# reprints the environment, and `restart kafka` / `restart postgres` (what chaos tests use)
# bring each back on the same port with its data: a message produced before the broker restart
# is read after it, a row written before the database restart is still there.
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

# PostgreSQL: a committed row survives a restart.
table=itest_restart_${tag//-/_}
"$PSQL" -X -q -v ON_ERROR_STOP=1 "$SWITCHYARD_DATABASE_URL" \
  -c "CREATE TABLE $table (v text); INSERT INTO $table VALUES ('kept')"
scripts/testenv restart postgres
got=$("$PSQL" -X -qtA -v ON_ERROR_STOP=1 "$SWITCHYARD_DATABASE_URL" -c "SELECT v FROM $table")
"$PSQL" -X -q "$SWITCHYARD_DATABASE_URL" -c "DROP TABLE $table"
[ "$got" = kept ] || fail "after restart the row reads \"$got\""

scripts/testenv status >/dev/null || fail "not everything runs after the restarts"
echo "itest_testenv_script: ok"
