#!/usr/bin/env bash
# The README's "Five-minute tour of the CLI", run as written: its ```sh block, taken from
# README.md, runs with `bash -euo pipefail` (so every command in it must succeed), then the
# outputs the README promises a reader are checked: the job's lines streamed by submit --wait,
# the fallback criterion chosen, status and logs of the finished job, KILLED and exit code 11,
# INVALID and exit code 12, the status topic decoded, secrets masked, and everything it started
# stopped by its own last lines.
#
# It runs the way a reader's copy does — Kafka and PostgreSQL started by the block's own
# `scripts/testenv up`, the default topic namespace, an empty database — but in a scratch tree
# laid out like the checkout (every top-level entry linked, build/bin = the binaries under
# test, $SY_BIN) with a clean environment (none of the test run's SWITCHYARD_* or
# SY_TESTENV_DIR), so its services, files and background processes are its own and cannot
# touch the test run's services or another run's. It gets SY_TOUR_TIMEOUT seconds (default 600),
# and whatever it leaves running when it fails is stopped.
#   SY_BIN=build/bin tests/docs/readme-tour.sh        (SY_README: another README to run)
set -uo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
bin=$(cd "${SY_BIN:?SY_BIN is not set (the directory of the binaries under test)}" && pwd) || exit 1
readme=${SY_README:-$root/README.md}
limit=${SY_TOUR_TIMEOUT:-600}

tmp=$(mktemp -d /tmp/readme-tour-XXXXXX)
tree=$tmp/tree
tpid=""
cleanup() {
  # the tour's own process group (timeout made it): the router and worker it started in the
  # background, if it failed before its line that stops them
  [ -n "$tpid" ] && kill -TERM -- "-$tpid" 2>/dev/null
  if [ -d "$tree/build/tour-testenv" ]; then
    (cd "$tree" && SY_TESTENV_DIR=$tree/build/tour-testenv scripts/testenv down >/dev/null 2>&1)
  fi
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

# The block: from the tour's heading, the first ```sh fence to the next ``` fence.
awk '/^## Five-minute tour of the CLI$/ { t = 1 }
     t && /^```sh$/ { b = 1; next }
     b && /^```$/ { exit }
     b { print }' "$readme" >"$tmp/tour.sh"
if ! grep -q 'scripts/testenv up' "$tmp/tour.sh" || ! grep -q 'scripts/testenv down' "$tmp/tour.sh"; then
  echo "FAIL no tour found in $readme (a \`\`\`sh block under \"## Five-minute tour of the CLI\" that starts and stops scripts/testenv)"
  exit 1
fi
echo "running the tour from $readme ($(wc -l <"$tmp/tour.sh") lines; binaries $bin; scratch $tmp)"

mkdir -p "$tree/build" "$tmp/tmp"
for f in "$root"/* "$root"/.[!.]*; do
  case ${f##*/} in build | build-* | .git | '.[!.]*') continue ;; esac
  ln -s "$f" "$tree/${f##*/}"
done
ln -s "$bin" "$tree/build/bin"

# Downloads come from the checkout's caches (what `make test`'s own scripts/testenv uses).
keep=(HOME="$HOME" PATH="$PATH" LANG=C.UTF-8 TMPDIR="$tmp/tmp"
  SY_TESTENV_CACHE="${SY_TESTENV_CACHE:-$root/build/testenv-cache}"
  SY_TESTENV_VENV="${SY_TESTENV_VENV:-$root/build/venv}")
for v in SY_MAVEN_CENTRAL SY_TESTENV_TIMEOUT; do
  [ -n "${!v:-}" ] && keep+=("$v=${!v}")
done

start=$SECONDS
(cd "$tree" && exec env -i "${keep[@]}" timeout -k 10 "$limit" bash -euo pipefail "$tmp/tour.sh") \
  >"$tmp/out" 2>"$tmp/err" &
tpid=$!
wait "$tpid"
rc=$?
echo "the tour took $((SECONDS - start)) s"

out=$tmp/out err=$tmp/err
if [ "$rc" -eq 0 ]; then
  ok "every line of the tour ran (bash -euo pipefail, exit 0)"
else
  bad "the tour stopped with exit code $rc$([ "$rc" -eq 124 ] && echo " (over ${limit} s)"); its last lines:"
  tail -n 5 "$err"
fi
check "clusters list shows the local and the EMR cluster" \
  bash -c "grep -q '^emr-prod .* emr .*j-2AXXXXXXGAPLF' '$out' && grep -q '^prod-a .* local ' '$out'"
check "submit --wait streams the job's lines to stdout, in order (after its id)" \
  bash -c "grep -x -e tour-etl -e 'step [123]' '$out' | head -4 | tr '\n' ' ' | grep -qx 'tour-etl step 1 step 2 step 3 '"
check "the fallback criterion routed it to prod-a" \
  grep -q 'job tour-etl RESOLVED cluster=prod-a command=sh: criterion #2 ' "$err"
check "status changes on stderr, ending SUCCEEDED" \
  bash -c "grep -o 'job tour-etl [A-Z]*' '$err' | tr '\n' ' ' | grep -q 'ACCEPTED.*RESOLVED.*CLAIMED.*RUNNING.*SUCCEEDED'"
check "status of the finished job" grep -Eqx 'status +SUCCEEDED' "$out"
check "logs of the finished job (its three lines again)" \
  bash -c "[ \$(grep -cx 'step 1' '$out') -eq 2 ]"
check "the kcat-produced job ran and was killed: logs -f shows its output, KILLED, exit code 11" \
  bash -c "grep -qx started '$out' && grep -q 'job tour-long KILLED .*killed by .*: not needed' '$err' && grep -qx 'exit code 11' '$out'"
check "a request nothing matches: INVALID, exit code 12" \
  bash -c "grep -q 'job sy-[^ ]* INVALID' '$err' && grep -qx 'exit code 12' '$out'"
check "the status topic read with kcat and decoded" \
  grep -q '^{"job_id":"tour-long",.*"status":"KILLED"' "$out"
check "schemas listed" grep -q '^JobStatus.v1.avsc .*current' "$out"
check "config shows the broker and masks the database URL" \
  bash -c "grep -q '^bootstrap.servers = 127.0.0.1:' '$out' && grep -qx 'database.url = \*\*\*' '$out'"
check "the tour stopped its router and worker" \
  bash -c "! pgrep -g '$tpid' >/dev/null"
check "the tour stopped its Kafka and PostgreSQL (scripts/testenv down)" \
  test ! -e "$tree/build/tour-testenv"

if [ "$failed" -ne 0 ]; then
  echo "---- the tour"; cat "$tmp/tour.sh"
  echo "---- its stdout"; cat "$out"
  echo "---- its stderr"; cat "$err"
  for f in "$tree"/build/tour-router.log "$tree"/build/tour-worker.log; do
    [ -f "$f" ] && { echo "---- ${f##*/}"; tail -n 40 "$f"; }
  done
  echo "(kept in $tmp)"
fi
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ] && rm -rf "$tmp"
[ "$failed" -eq 0 ]
