#!/usr/bin/env bash
# Exercises deploy/emr/bootstrap-register.sh off EMR: a fake /mnt/var/lib/info, stubs for aws,
# systemctl and the switchyard CLI (a file-backed registry that records every call), and
# SY_EMR_ROOT so that nothing is installed outside a scratch directory. Then replays every CLI
# call the script made against the real `switchyard` binary (argument 1) with an unreachable
# database: exit 5 (database unreachable), not 2 (usage), proves the real CLI accepts them.
# What this cannot show: EMR running the action, systemd running the unit at boot and shutdown
# (the test runs the unit's ExecStart/ExecStop commands itself, with its EnvironmentFile), the
# AWS CLI's real answers.
set -uo pipefail

real_cli=${1:?usage: test-emr-bootstrap.sh PATH-TO-switchyard}
here=$(cd "$(dirname "$0")" && pwd)
script=$here/../../deploy/emr/bootstrap-register.sh
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
failures=0 checks=0
fail() {
  echo "test-emr-bootstrap: FAIL: $*" >&2
  failures=$((failures + 1))
}
check() { # check DESCRIPTION COMMAND...
  checks=$((checks + 1))
  local what=$1
  shift
  "$@" || fail "$what"
}

stubs=$tmp/stubs state=$tmp/state
mkdir -p "$stubs" "$state/registry" "$tmp/info"
cat >"$stubs/switchyard" <<'EOF'
#!/usr/bin/env bash
# Stub CLI: a registry of one file per cluster ("address status tags"); records every call.
state=${STUB_STATE:?}
{ printf '%q ' "$@"; echo; echo "db_url_in_env=${SWITCHYARD_DATABASE_URL:+yes}"; } >>"$state/calls"
[ "${1:-}" = -q ] && shift
[ "${1:-}" = --help ] && exit 0
if [ -s "$state/db_down" ]; then # transient outage: fail while the counter is positive
  n=$(cat "$state/db_down"); echo $((n - 1)) >"$state/db_down"; [ "$n" -gt 0 ] && exit 5
fi
[ "$1" = clusters ] || exit 2
reg=$state/registry
case $2 in
  show)
    [ -f "$reg/$3" ] || exit 4
    read -r addr status tags <"$reg/$3"
    printf 'name:            %s\naddress:         %s\nstatus:          %s\ntags:            %s\n' "$3" "$addr" "$status" "$tags"
    ;;
  add)
    name=$3; shift 3; addr="" status=UP tags=""
    while [ $# -gt 0 ]; do
      case $1 in --address) addr=$2 ;; --status) status=$2 ;; --tags) tags=$2 ;; esac; shift 2
    done
    [ -f "$reg/$name" ] && exit 1
    echo "$addr $status $tags" >"$reg/$name"; echo "cl-000000000001"
    ;;
  set-status)
    [ -f "$reg/$3" ] || exit 4
    read -r addr _ tags <"$reg/$3"; echo "$addr $4 $tags" >"$reg/$3"
    ;;
  *) exit 2 ;;
esac
EOF
cat >"$stubs/aws" <<'EOF'
#!/usr/bin/env bash
state=${STUB_STATE:?}
case "$1 $2" in
  "secretsmanager get-secret-value") echo "postgresql://switchyard:s3cret-pw@db.example.internal:5432/switchyard" ;;
  "emr describe-cluster") [ -s "$state/emr_state" ] || exit 254; cat "$state/emr_state" ;;
  "s3 cp") cp "$state/cli-download" "${@: -1}" ;;
  *) exit 2 ;;
esac
EOF
cat >"$stubs/systemctl" <<'EOF'
#!/usr/bin/env bash
echo "$*" >>"${STUB_STATE:?}/systemctl"
EOF
cp "$stubs/switchyard" "$state/cli-download"
chmod +x "$stubs"/* "$state/cli-download"
export STUB_STATE=$state PATH=$stubs:$PATH SY_EMR_INFO_DIR=$tmp/info SY_EMR_RETRY_S=10
echo '{"jobFlowId":"j-2AXXXXXXGAPLF","jobFlowCreationInstant":1700000000000,"instanceCount":3}' >"$tmp/info/job-flow.json"

# 1. A core node does nothing.
echo '{"isMaster": false, "isRunningNameNode": false}' >"$tmp/info/instance.json"
SY_EMR_ROOT=$tmp/core "$script" --database-url-secret sy/db --region us-east-1 >/dev/null 2>&1
check "a core node exits 0" test $? -eq 0
check "a core node installs nothing" test ! -e "$tmp/core"

# 2. Bad arguments fail the bootstrap action.
echo '{"isMaster": true, "isRunningNameNode": true}' >"$tmp/info/instance.json"
root=$tmp/root
SY_EMR_ROOT=$root "$script" --database-url-secret sy/db --region us-east-1 --status DOWN >/dev/null 2>&1
check "--status DOWN is refused" test $? -eq 1
SY_EMR_ROOT=$root "$script" --region us-east-1 >/dev/null 2>&1
check "--database-url-secret is required" test $? -eq 1
SY_EMR_ROOT=$root "$script" --database-url-secret sy/db --region us-east-1 --tags "env prod" >/dev/null 2>&1
check "tags with spaces are refused" test $? -eq 1

# 3. The master installs the helper, its environment file and the unit, and starts the unit.
SY_EMR_ROOT=$root "$script" --database-url-secret sy/db --region us-east-1 \
  --tags env:prod,spark:3.5 --cli-url s3://bucket/switchyard 2>"$tmp/err"
check "bootstrap on the master succeeds: $(cat "$tmp/err")" test $? -eq 0
helper=$root/usr/local/libexec/switchyard/emr-register
env_file=$root/etc/switchyard/emr-register.env
unit=$root/etc/systemd/system/switchyard-emr-register.service
check "the CLI was downloaded" test -x "$root/usr/local/bin/switchyard"
check "the helper is installed" test -x "$helper"
check "the env file is private" test "$(stat -c %a "$env_file")" = 600
check "the env file names the cluster" grep -qx 'SY_EMR_CLUSTER_ID=j-2AXXXXXXGAPLF' "$env_file"
check "the name defaults to the cluster id" grep -qx 'SY_EMR_NAME=j-2AXXXXXXGAPLF' "$env_file"
check "no database URL on disk" bash -c "! grep -rq s3cret-pw '$root'"
check "ExecStart registers" grep -qx "ExecStart=$helper start" "$unit"
check "ExecStop deregisters" grep -qx "ExecStop=$helper stop" "$unit"
check "the unit reads the env file" grep -qx "EnvironmentFile=$env_file" "$unit"
check "the unit is oneshot and stays active" grep -qx "RemainAfterExit=yes" "$unit"
check "systemctl daemon-reload, enable, start" \
  test "$(tr '\n' ';' <"$state/systemctl")" = "daemon-reload;enable switchyard-emr-register.service;start switchyard-emr-register.service;"
if command -v systemd-analyze >/dev/null; then
  out=$(systemd-analyze verify "$unit" 2>&1)
  check "systemd-analyze verify accepts the unit: $out" test -z "$(grep -v 'not executable\|No such file' <<<"$out")"
fi

# What systemd does with the unit: ExecStart/ExecStop with the EnvironmentFile.
unit_run() {
  env -i PATH="$PATH" STUB_STATE="$state" SY_EMR_RETRY_S="${retry_s:-10}" bash -c "set -a; . '$env_file'; set +a; exec '$helper' $1" 2>"$tmp/err"
}
reg=$state/registry/j-2AXXXXXXGAPLF

unit_run start
check "ExecStart registers the cluster: $(cat "$tmp/err")" test "$(cat "$reg" 2>/dev/null)" = "j-2AXXXXXXGAPLF UP env:prod,spark:3.5"
check "the database URL reached the CLI in its environment" grep -q 'db_url_in_env=yes' "$state/calls"
check "the database URL never was an argument" bash -c "! grep -q s3cret-pw '$state/calls'"

# A reboot after the tags were moved away: ExecStart leaves the registration alone.
echo "j-2AXXXXXXGAPLF OUT_OF_SERVICE env:old" >"$reg"
unit_run start
check "a second start leaves tags and status alone" test "$(cat "$reg")" = "j-2AXXXXXXGAPLF OUT_OF_SERVICE env:old"

# ExecStop: by the cluster's state.
echo RUNNING >"$state/emr_state"
unit_run stop
check "stop while the cluster runs changes nothing" test "$(cat "$reg")" = "j-2AXXXXXXGAPLF OUT_OF_SERVICE env:old"
echo TERMINATING >"$state/emr_state"
unit_run stop
check "stop while the cluster terminates marks it TERMINATED" test "$(cat "$reg")" = "j-2AXXXXXXGAPLF TERMINATED env:old"
echo "j-2AXXXXXXGAPLF UP env:old" >"$reg"
: >"$state/emr_state"
unit_run stop
check "stop without an answer from EMR takes it out of service" test "$(cat "$reg")" = "j-2AXXXXXXGAPLF OUT_OF_SERVICE env:old"

# A name registered for another cluster: refuse.
echo "j-OTHERCLUSTER UP env:prod" >"$reg"
unit_run start
check "start refuses a name held by another cluster" test $? -eq 1
check "... and leaves it alone" test "$(cat "$reg")" = "j-OTHERCLUSTER UP env:prod"

# PostgreSQL briefly unreachable: retried.
rm -f "$reg"
echo 1 >"$state/db_down"
unit_run start
check "start retries an unreachable database: $(cat "$tmp/err")" test "$(cat "$reg" 2>/dev/null)" = "j-2AXXXXXXGAPLF UP env:prod,spark:3.5"

# ... and gives up after its budget, failing the unit (and so the bootstrap action).
rm -f "$reg"
echo 99 >"$state/db_down"
retry_s=3 unit_run start
check "start fails once the database stays unreachable past the budget" test $? -eq 1
check "... having registered nothing" test ! -e "$reg"
: >"$state/db_down"

# Every CLI call the script made, replayed against the real CLI with an unreachable database.
replayed=0 args=()
while IFS= read -r line; do
  eval "args=($line)"
  [ "${args[0]}" = -q ] || continue # the --help check of the bootstrap has no -q
  replayed=$((replayed + 1))
  env -i SWITCHYARD_DATABASE_URL=postgresql://switchyard@127.0.0.1:9/switchyard \
    "$real_cli" "${args[@]}" >/dev/null 2>"$tmp/err"
  rc=$?
  check "the real CLI accepts: switchyard ${args[*]} (exit $rc: $(head -c 200 "$tmp/err"))" test "$rc" -eq 5
done < <(grep -v '^db_url_in_env=' "$state/calls")
check "CLI calls were replayed" test "$replayed" -ge 4

echo "test-emr-bootstrap: $((checks - failures))/$checks checks passed"
[ "$failures" -eq 0 ]
