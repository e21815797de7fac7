#!/usr/bin/env bash
# Integration test of the registry CLI: drives the real `switchyard` binary ($SY_BIN)
# against PostgreSQL ($SWITCHYARD_DATABASE_URL) through admin migrate/version, clusters,
# commands, link/unlink — good input and bad (bad tag, bad spec, unknown names, unreachable
# database), checking exit codes (0 ok, 1 error, 2 usage, 4 not found, 5 unavailable) and
# output. Works in a scratch database of its own (needs psql), dropped at the end.
set -uo pipefail

bin=${SY_BIN:?SY_BIN is not set}/switchyard
base_url=${SWITCHYARD_DATABASE_URL:?SWITCHYARD_DATABASE_URL is not set (run under scripts/testenv)}
command -v psql >/dev/null || { echo "itest_admin_cli: psql is needed" >&2; exit 1; }
# switchyard rejects SWITCHYARD_* variables that are not config keys, and the test environment
# may export some for other tests: run it with the database URL only.
for v in $(compgen -e | grep '^SWITCHYARD_'); do unset "$v"; done

failures=0 checks=0
tmp=$(mktemp -d)
db=sy_itest_cli_$$_$RANDOM

cleanup() {
  psql -X -q "$base_url" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1
  rm -rf "$tmp"
}
trap cleanup EXIT

# The same server and credentials, database $2 (URI or key=value form).
scratch_url() {
  local u=$1 d=$2
  case "$u" in
    postgres://* | postgresql://*)
      local query="" base=${u%%\?*}
      [[ "$u" == *\?* ]] && query="?${u#*\?}"
      local scheme=${base%%://*} rest=${base#*://}
      echo "${scheme}://${rest%%/*}/${d}${query}" ;;
    *) echo "$u dbname=$d" ;;
  esac
}

fail() { echo "FAIL (line ${BASH_LINENO[-2]}): $*" >&2; failures=$((failures + 1)); }

# sy WANT_RC ARGS...: runs switchyard, output in $out / $err, checks the exit code.
sy() {
  local want=$1; shift
  checks=$((checks + 1))
  "$bin" "$@" >"$tmp/out" 2>"$tmp/err"
  local rc=$?
  out=$(cat "$tmp/out") err=$(cat "$tmp/err")
  if [ "$rc" != "$want" ]; then
    fail "switchyard $* exited $rc, expected $want; stdout: $out; stderr: $err"
  fi
}
out_has() { checks=$((checks + 1)); grep -qE -- "$1" <<<"$out" || fail "stdout lacks /$1/: $out"; }
out_lacks() { checks=$((checks + 1)); ! grep -qE -- "$1" <<<"$out" || fail "stdout has /$1/: $out"; }
err_has() { checks=$((checks + 1)); grep -qE -- "$1" <<<"$err" || fail "stderr lacks /$1/: $err"; }
# json_check PYTHON-EXPR: evaluates the expression with j = the JSON on stdout.
json_check() {
  checks=$((checks + 1))
  python3 -c "import json,sys; j=json.loads(sys.stdin.read()); sys.exit(0 if ($1) else 1)" \
    <<<"$out" || fail "JSON check failed: $1; JSON: $out"
}

psql -X -q "$base_url" -c "CREATE DATABASE $db" >/dev/null || { echo "cannot create $db" >&2; exit 1; }
export SWITCHYARD_DATABASE_URL
SWITCHYARD_DATABASE_URL=$(scratch_url "$base_url" "$db")

# --- migrations ---
sy 1 clusters list
err_has "run switchyard admin migrate"
sy 0 admin version
out_has "database schema version: 0"
out_has "pending"
sy 0 admin migrate
out_has "at version [0-9]+ \(was 0\)"
sy 0 admin migrate
out_has "up to date"
sy 0 admin version --json
json_check "j['database_version'] == j['binary_version'] and j['pending'] == 0"
sy 2 admin frobnicate

# --- clusters ---
sy 0 clusters add emr-prod-1 --kind emr --address j-ABC123 --region us-east-1 \
  --tags env:prod,spark:3.5 --weight 2 --max-concurrent 50
out_has "^cl-[0-9a-f]{12}$"
emr_id=$out
sy 0 clusters add local-1 --kind local --tags env:dev
sy 0 clusters add eks-1 --kind emr-eks --address abcdefghij0123456789klmno --region eu-west-1
sy 1 clusters add local-1 --kind local
err_has "already exists"

sy 2 clusters add bad-1 --kind local --tags 'env prod'
err_has "printable ASCII without spaces"
sy 2 clusters add bad-1 --kind local --tags switchyard.id:x
err_has "reserved"
sy 2 clusters add bad-1 --kind local --tags nocolon
err_has "key:value"
sy 2 clusters add bad-1
err_has "--kind"
sy 2 clusters add bad-1 --kind yarn
sy 2 clusters add bad-1 --kind emr
err_has "needs a backend address"
sy 2 clusters add bad-1 --kind local --address j-ABC
sy 2 clusters add bad-1 --kind local --weight abc
sy 2 clusters add 'bad name' --kind local
sy 2 clusters add "$emr_id" --kind local
err_has "looks like a cluster id"

sy 0 clusters show emr-prod-1 --json
json_check "j['id'] == '$emr_id' and j['backend_kind'] == 'emr' and j['backend_address'] == 'j-ABC123' and j['region'] == 'us-east-1' and j['status'] == 'UP' and j['weight'] == 2 and j['max_concurrent'] == 50 and j['tags'] == ['env:prod', 'spark:3.5']"
sy 0 clusters show "$emr_id"
out_has "^name: +emr-prod-1$"
out_has "switchyard.id:$emr_id"

sy 0 clusters tag emr-prod-1 queue:etl
out_has "tagged"
sy 0 clusters tag emr-prod-1 queue:etl
out_has "already has"
sy 2 clusters tag emr-prod-1 'bad tag'
sy 4 clusters tag no-such-cluster a:b
err_has "no cluster with id or name \"no-such-cluster\""
sy 0 clusters list --tag queue:etl --json
json_check "[c['name'] for c in j] == ['emr-prod-1']"
sy 0 clusters list --tag switchyard.name:local-1 --json
json_check "[c['name'] for c in j] == ['local-1']"
sy 0 clusters list --tag env:prod,queue:etl --json
json_check "[c['name'] for c in j] == ['emr-prod-1']"
sy 0 clusters list
out_has "^emr-prod-1 +cl-[0-9a-f]{12} +emr +UP"
out_has "^local-1 "

sy 0 clusters set-status emr-prod-1 OUT_OF_SERVICE
sy 2 clusters set-status emr-prod-1 DOWN
sy 4 clusters set-status nope UP
sy 0 clusters list --status OUT_OF_SERVICE --json
json_check "[c['name'] for c in j] == ['emr-prod-1']"
sy 0 clusters untag emr-prod-1 queue:etl
out_has "untagged"
sy 0 clusters update emr-prod-1 --weight 5 --region "" --status UP
sy 0 clusters show emr-prod-1 --json
json_check "j['weight'] == 5 and j['region'] is None and j['status'] == 'UP' and 'queue:etl' not in j['tags']"
sy 2 clusters update emr-prod-1
err_has "nothing to update"
sy 2 clusters update emr-prod-1 --kind local
sy 4 clusters show nope
sy 4 clusters update nope --weight 1

# --- commands ---
sy 0 commands add spark-submit --tags type:spark-submit,spark:3.5 \
  --spec '{"local":{"argv":["/usr/bin/env","spark-submit"]}}'
out_has "^cmd-[0-9a-f]{12}$"
cmd_id=$out
sy 2 commands add bad-cmd --spec '{"local":{"argv":[]}}'
err_has "spec.local.argv"
sy 2 commands add bad-cmd --spec '{"local":'
err_has "not valid JSON"
sy 2 commands add bad-cmd --spec '{"yarn":{}}'
err_has "unknown backend"
sy 2 commands add bad-cmd --spec '{"emr-eks":{"release_label":"emr-6.15.0-latest","entry_point":"s3://b/a.py"}}'
err_has "execution_role_arn is missing"
sy 2 commands add bad-cmd
err_has "--spec"
sy 2 commands add bad-cmd --spec-file "$tmp/does-not-exist.json"
cat >"$tmp/hive.json" <<'EOF'
{"local": {"argv": ["hive"]},
 "emr": {"jar": "command-runner.jar", "args": ["hive-script", "--run-hive-script"]}}
EOF
sy 0 commands add hive --spec-file "$tmp/hive.json" --tags type:hive
checks=$((checks + 1))
echo '{"local": {"argv": ["true"]}}' | "$bin" commands add from-stdin --spec-file - >/dev/null 2>&1 \
  || fail "commands add --spec-file - failed"
sy 1 commands add hive --spec '{"local":{"argv":["x"]}}'
sy 0 commands show spark-submit --json
json_check "j['id'] == '$cmd_id' and j['status'] == 'ACTIVE' and j['spec']['local']['argv'][1] == 'spark-submit' and j['clusters'] == []"
sy 0 commands list --tag type:hive --json
json_check "[c['name'] for c in j] == ['hive']"
sy 0 commands tag spark-submit queue:etl
sy 0 commands set-status hive DEPRECATED
sy 2 commands set-status hive UP
sy 0 commands list --status DEPRECATED --json
json_check "[c['name'] for c in j] == ['hive']"
sy 4 commands show nope

# --- links ---
sy 0 link spark-submit local-1
out_has "^linked"
sy 0 link spark-submit local-1
out_has "already linked"
sy 1 link spark-submit emr-prod-1
err_has "no \"emr\" entry"
sy 0 link hive emr-prod-1
sy 4 link nope local-1
sy 4 link spark-submit nope
sy 2 link spark-submit
sy 0 commands show spark-submit --json
json_check "[c['name'] for c in j['clusters']] == ['local-1']"
sy 0 clusters show emr-prod-1 --json
json_check "[c['name'] for c in j['commands']] == ['hive']"
# a new spec must keep serving the linked emr cluster
sy 1 commands update hive --spec '{"local":{"argv":["hive"]}}'
err_has "emr-prod-1"
sy 0 commands update hive --spec '{"emr":{"jar":"command-runner.jar","args":["hive"]}}' --name hive-3
sy 0 commands show hive-3 --json
json_check "'local' not in j['spec'] and j['name'] == 'hive-3'"

# --- remove ---
sy 1 clusters remove local-1
err_has "linked to 1 command \(spark-submit\)"
sy 0 unlink spark-submit local-1
out_has "^unlinked"
sy 0 unlink spark-submit local-1
out_has "was not linked"
sy 0 clusters remove local-1
sy 4 clusters show local-1
sy 1 commands remove hive-3
sy 0 commands remove hive-3 --force
sy 0 clusters show emr-prod-1 --json
json_check "j['commands'] == []"
sy 0 clusters remove "$emr_id"
sy 4 clusters remove "$emr_id"

# --- usage and unreachable database ---
sy 2 clusters
sy 2 clusters frob
sy 2 clusters list --bogus
sy 2 clusters list extra-arg
sy 2 commands
sy 0 clusters --help
out_has "set-status"
sy 0 commands --help
sy 0 admin --help
sy 0 link --help
SWITCHYARD_DATABASE_URL='postgresql://alice:Sup3rSecretPw@127.0.0.1:1/x' sy 5 clusters list
err_has "cannot connect"
checks=$((checks + 1))
grep -q Sup3rSecretPw <<<"$err" && fail "the password leaked: $err"
SWITCHYARD_DATABASE_URL= sy 2 clusters list
err_has "database.url"

echo "itest_admin_cli: $checks checks, $failures failed"
[ "$failures" -eq 0 ]
