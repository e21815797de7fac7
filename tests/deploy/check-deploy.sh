#!/usr/bin/env bash
# check-deploy.sh: the `deploy` test (ctest label deploy; part of `make test`; alone:
# `ctest --test-dir build -L deploy --output-on-failure`). Checks everything under deploy/
# without a container engine, a Kubernetes cluster or AWS:
#
#   tools      installs what is missing, pinned: shellcheck, python3, systemd (for
#              systemd-analyze), binutils from Debian; kustomize and KEDA's CRDs from the Go module
#              proxy; builds our manifest validator (tests/deploy/k8svalidate). Cached in
#              $SY_DEPLOY_CACHE (default build/deploy-cache).
#   lint       shellcheck on every shell script of the repository (tests/deploy/shellcheck-all)
#   iam        deploy/iam/check-policy: the policy is well-formed and grants what the code calls
#   docker     deploy/docker/check-build: the Dockerfile's build stage, run here
#   k8s        kustomize build of the base and the example overlay, validated by k8svalidate
#              (strict schemas, KEDA CRD schemas, our rules); each container's SWITCHYARD_*
#              environment fed to the image's own binaries (`switchyard config`, and
#              librdkafka accepting the kafka.* properties)
#   probe      deploy/docker/switchyard-probe against real processes and an unreachable database
#   systemd    systemd-analyze verify and security on the units; their example environment file
#   emr        tests/deploy/test-emr-bootstrap.sh
#   self-test  each checker is shown a broken input and must fail
#
# Exit status 0 when everything passed, 1 otherwise.
set -uo pipefail

repo=$(cd "$(dirname "$0")/../.." && pwd)
cd "$repo" || exit 1
cache=${SY_DEPLOY_CACHE:-$repo/build/deploy-cache}
case $cache in /*) ;; *) cache=$repo/$cache ;; esac

# ---- pins ---------------------------------------------------------------------------------------
KUSTOMIZE_VERSION=v5.8.1 # sigs.k8s.io/kustomize/kustomize/v5; v5.8.2+ need Go 1.26/1.27
KEDA_VERSION=v2.21.0     # github.com/kedacore/keda/v2: its CRDs (config/crd/bases)
KEDA_SUM=h1:R6z2HZvstK4RLUMxroNACzBj74xGxt3kG59b5Xc+Xps=
SHELLCHECK_DEB=0.9.0-1 # Debian bookworm
GO_MIN=1.25            # tests/deploy/k8svalidate/go.mod

failures=() work=""
start_all=$SECONDS
mkdir -p "$cache" || exit 1
work=$(mktemp -d "$cache/run.XXXXXX") || exit 1
trap 'rm -rf "$work"' EXIT

step_start=0
step() {
  echo
  echo "== $1"
  step_start=$SECONDS
}
step_done() { echo "-- $1: $((SECONDS - step_start)) s"; }
fail() {
  echo "check-deploy: FAIL: $*"
  failures+=("$*")
}

# ---- tools --------------------------------------------------------------------------------------
step tools
apt_install() { # apt_install PKG[=VERSION]...: as root or with sudo
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo=sudo
  export DEBIAN_FRONTEND=noninteractive
  if ! compgen -G "/var/lib/apt/lists/*_Packages" >/dev/null; then
    $sudo apt-get update -qq || return 1
  fi
  $sudo apt-get install -y -qq --no-install-recommends "$@" >/dev/null ||
    { $sudo apt-get update -qq && $sudo apt-get install -y -qq --no-install-recommends "$@" >/dev/null; }
}
missing=()
have_deb() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }
if ! have_deb shellcheck; then
  missing+=("shellcheck=$SHELLCHECK_DEB")
elif [ "$(dpkg-query -W -f='${Version}' shellcheck)" != "$SHELLCHECK_DEB" ]; then
  echo "check-deploy: note: shellcheck $(dpkg-query -W -f='${Version}' shellcheck) is installed, the baseline was made with $SHELLCHECK_DEB"
fi
for p in python3 binutils systemd ca-certificates; do have_deb "$p" || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  echo "check-deploy: installing from Debian: ${missing[*]}"
  apt_install "${missing[@]}" || fail "apt-get install ${missing[*]}"
fi

export GOMODCACHE=$cache/go/mod GOCACHE=$cache/go/build GOFLAGS=-modcacherw GOTOOLCHAIN=local
go_ok=0
# the official tarball's place, when a login shell's PATH is not in effect
if ! command -v go >/dev/null && [ -x /usr/local/go/bin/go ]; then
  PATH=/usr/local/go/bin:$PATH
fi
if ! command -v go >/dev/null; then
  fail "Go $GO_MIN or newer is needed (kustomize and the manifest validator are built from Go modules; Debian bookworm's golang-go is 1.19): install it from https://go.dev/dl/"
else
  gov=$(go env GOVERSION | sed 's/^go//')
  if [ "$(printf '%s\n%s\n' "$GO_MIN" "$gov" | sort -V | head -n 1)" != "$GO_MIN" ]; then
    # A Go that knows toolchains (1.21+) fetches a newer one from the Go module proxy.
    export GOTOOLCHAIN=go1.26.8
    echo "check-deploy: Go $gov is older than $GO_MIN: using toolchain $GOTOOLCHAIN from the module proxy"
  fi
  go_ok=1
fi

kustomize=$cache/bin/kustomize-$KUSTOMIZE_VERSION
if [ "$go_ok" = 1 ] && [ ! -x "$kustomize" ]; then
  echo "check-deploy: building kustomize $KUSTOMIZE_VERSION (go install, first run only)"
  if GOBIN=$work/gobin go install "sigs.k8s.io/kustomize/kustomize/v5@$KUSTOMIZE_VERSION"; then
    mkdir -p "$cache/bin" && mv "$work/gobin/kustomize" "$kustomize"
  else
    fail "go install kustomize $KUSTOMIZE_VERSION"
  fi
fi
if [ -x "$kustomize" ] && [ "$("$kustomize" version)" != "$KUSTOMIZE_VERSION" ]; then
  fail "$kustomize reports $("$kustomize" version), expected $KUSTOMIZE_VERSION"
fi

vsrc=tests/deploy/k8svalidate
vhash=$(cat "$vsrc/go.mod" "$vsrc/go.sum" "$vsrc"/*.go | sha256sum | cut -c1-16)
validator=$cache/bin/k8svalidate-$vhash
if [ "$go_ok" = 1 ] && [ ! -x "$validator" ]; then
  echo "check-deploy: building k8svalidate (k8s.io/api and apimachinery from $vsrc/go.mod)"
  mkdir -p "$cache/bin"
  rm -f "$cache"/bin/k8svalidate-* # builds of older sources
  (cd "$vsrc" && go build -mod=readonly -trimpath -o "$validator" .) || fail "go build $vsrc"
fi

crd_dir=""
if [ "$go_ok" = 1 ]; then
  if keda_json=$(cd "$cache" && go mod download -json "github.com/kedacore/keda/v2@$KEDA_VERSION"); then
    keda_sum=$(python3 -c 'import json,sys; print(json.load(sys.stdin).get("Sum",""))' <<<"$keda_json")
    keda_dir=$(python3 -c 'import json,sys; print(json.load(sys.stdin).get("Dir",""))' <<<"$keda_json")
    if [ "$keda_sum" != "$KEDA_SUM" ]; then
      fail "KEDA $KEDA_VERSION module hash $keda_sum, pinned $KEDA_SUM"
    else
      crd_dir=$keda_dir/config/crd/bases
    fi
  else
    fail "go mod download github.com/kedacore/keda/v2@$KEDA_VERSION"
  fi
fi
step_done tools

# ---- shellcheck ---------------------------------------------------------------------------------
step shellcheck
tests/deploy/shellcheck-all || fail "shellcheck: new findings (above)"
step_done shellcheck

# ---- IAM policy ---------------------------------------------------------------------------------
step iam
deploy/iam/check-policy || fail "deploy/iam/check-policy"
step_done iam

# ---- Dockerfile ---------------------------------------------------------------------------------
step docker
bin=""
if deploy/docker/check-build --scratch "$cache/docker" --image-files-out "$work/image-files" \
  > "$work/check-build.log" 2>&1; then
  grep '^check-build' "$work/check-build.log"
else
  cat "$work/check-build.log"
  fail "deploy/docker/check-build"
fi
[ -x "$cache/docker/context/build-image/bin/switchyard" ] && bin=$cache/docker/context/build-image/bin
[ -n "$bin" ] || fail "no binaries from the Dockerfile's build stage: the steps below that run them are skipped"
step_done docker

# ---- Kubernetes ---------------------------------------------------------------------------------
step k8s
image_files=""
[ -s "$work/image-files" ] && image_files=$(paste -sd, "$work/image-files")
validate() { # validate RENDER [k8svalidate options...]
  local render=$1
  shift
  "$validator" -crd "$crd_dir/keda.sh_scaledobjects.yaml" -crd "$crd_dir/keda.sh_triggerauthentications.yaml" \
    ${image_files:+-image-files "$image_files"} "$@" "$render"
}
if [ -x "$kustomize" ] && [ -x "$validator" ] && [ -n "$crd_dir" ]; then
  "$kustomize" build deploy/k8s/base > "$work/base.yaml" || fail "kustomize build deploy/k8s/base"
  validate "$work/base.yaml" -namespace-agnostic -external Secret/switchyard-secrets ||
    fail "k8svalidate: deploy/k8s/base"
  # The example overlay with the example secrets (never a real secrets.env lying in the tree).
  cp -r deploy/k8s "$work/k8s"
  cp deploy/k8s/overlays/example/secrets.env.example "$work/k8s/overlays/example/secrets.env"
  "$kustomize" build "$work/k8s/overlays/example" > "$work/overlay.yaml" ||
    fail "kustomize build deploy/k8s/overlays/example"
  validate "$work/overlay.yaml" -env-dir "$work/env" || fail "k8svalidate: deploy/k8s/overlays/example"
  if [ -n "$bin" ]; then
    for f in "$work"/env/*.env; do
      name=$(basename "$f" .env)
      mapfile -t vars < "$f"
      if env -i "${vars[@]}" "$bin/switchyard" config > /dev/null 2> "$work/err"; then
        echo "check-deploy: ok: $name: switchyard config accepts the container's SWITCHYARD_* environment (${#vars[@]} variables)"
      else
        fail "$name: switchyard config rejects the container's environment: $(cat "$work/err")"
      fi
      # librdkafka checks every kafka.* property when the client is made; a broker on a closed
      # port then makes the command end with 5 (unreachable) instead of 2 (bad configuration).
      env -i "${vars[@]}" "$bin/switchyard" -q -X bootstrap.servers=127.0.0.1:9 -X broker.timeout.ms=500 \
        status check-deploy-probe > /dev/null 2> "$work/err"
      rc=$?
      if [ "$rc" -eq 5 ]; then
        echo "check-deploy: ok: $name: librdkafka accepts the kafka.* properties"
      else
        fail "$name: switchyard status exited $rc, expected 5 (broker unreachable): $(tail -n 3 "$work/err")"
      fi
    done
  fi
else
  fail "k8s checks skipped: kustomize, k8svalidate or the KEDA CRDs are missing (see tools)"
fi
step_done k8s

# ---- probe --------------------------------------------------------------------------------------
step probe
probe=deploy/docker/switchyard-probe
fake=$work/procs/switchyard-worker
mkdir -p "$work/procs" && cp "$(command -v sleep)" "$fake"
"$fake" 60 &
fake_pid=$!
sleep 0.2
"$probe" process "$fake" || fail "switchyard-probe process: a running process is not seen"
kill -STOP "$fake_pid"
sleep 0.2
if "$probe" process "$fake" 2> /dev/null; then fail "switchyard-probe process: a stopped process passes"; fi
kill -CONT "$fake_pid"
kill "$fake_pid"
wait "$fake_pid" 2> /dev/null
if "$probe" process "$fake" 2> /dev/null; then fail "switchyard-probe process: a process that exited passes"; fi
if [ -n "$bin" ]; then
  if env -i PATH="$bin:/usr/bin:/bin" SWITCHYARD_DATABASE_URL=postgresql://switchyard@127.0.0.1:9/switchyard \
    "$probe" database 2> "$work/err"; then
    fail "switchyard-probe database passes with PostgreSQL unreachable"
  elif grep -q "cannot connect to PostgreSQL" "$work/err"; then
    echo "check-deploy: ok: switchyard-probe database fails when PostgreSQL is unreachable: $(cat "$work/err")"
  else
    fail "switchyard-probe database: unexpected message: $(cat "$work/err")"
  fi
fi
echo "check-deploy: ok: switchyard-probe process sees running, stopped and exited processes as they are"
step_done probe

# ---- systemd ------------------------------------------------------------------------------------
step systemd
units=(switchyard-router.service switchyard-worker.service)
if command -v systemd-analyze > /dev/null && [ -n "$bin" ]; then
  # A scratch root with the units, the binaries where ExecStart expects them and the system's
  # own units (verify resolves dependencies such as network-online.target there).
  root=$work/sysroot
  mkdir -p "$root/etc/systemd/system" "$root/usr/local/bin" "$root/etc/switchyard" "$root/usr/lib/systemd"
  cp deploy/systemd/*.service "$root/etc/systemd/system/"
  cp "$bin"/switchyard* "$root/usr/local/bin/"
  cp deploy/systemd/switchyard.env.example "$root/etc/switchyard/switchyard.env"
  cp -r /usr/lib/systemd/system "$root/usr/lib/systemd/"
  out=$(systemd-analyze verify --root="$root" "${units[@]}" 2>&1)
  if [ -n "$out" ]; then fail "systemd-analyze verify: $out"; else echo "check-deploy: ok: systemd-analyze verify: ${units[*]}"; fi
  for u in "${units[@]}"; do
    score=$(systemd-analyze security --offline=yes --root="$root" "$u" 2>&1 | sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p')
    limit=2.0
    [ "$u" = switchyard-worker.service ] && limit=3.5 # local jobs inherit the sandbox (see the unit)
    if [ -z "$score" ] || ! awk -v s="$score" -v l="$limit" 'BEGIN { exit !(s <= l) }'; then
      fail "systemd-analyze security $u: exposure ${score:-unknown}, want <= $limit"
    else
      echo "check-deploy: ok: $u exposure $score (<= $limit)"
    fi
  done
else
  fail "systemd checks skipped: systemd-analyze or the binaries are missing"
fi
w=deploy/systemd/switchyard-worker.service
grep -qx 'KillMode=mixed' "$w" || fail "$w: KillMode=mixed is needed (SIGTERM to the worker only, not to its jobs)"
stop_s=$(sed -n 's/^TimeoutStopSec=\([0-9]*\)s\{0,1\}$/\1/p' "$w")
mapfile -t host_env < deploy/systemd/switchyard.env.example
grace_ms=0
for key in SHUTDOWN_GRACE_MS:30000 KILL_GRACE_MS:10000; do
  v=$(printf '%s\n' "${host_env[@]}" | sed -n "s/^SWITCHYARD_WORKER_${key%%:*}=//p")
  grace_ms=$((grace_ms + ${v:-${key#*:}}))
done
if [ -z "$stop_s" ] || [ $((stop_s * 1000)) -lt $((grace_ms + 5000)) ]; then
  fail "$w: TimeoutStopSec=${stop_s:-?} must exceed worker.shutdown.grace.ms + worker.kill.grace.ms ($grace_ms ms) + 5 s"
else
  echo "check-deploy: ok: $w stops within ${stop_s}s, after the worker's graces (${grace_ms} ms)"
fi
if [ -n "$bin" ]; then
  for u in "${units[@]}"; do
    # What systemd gives the service: the unit's Environment= lines, then the EnvironmentFile.
    vars=()
    while IFS= read -r l; do vars+=("$l"); done < <(sed -n 's/^Environment=//p' "deploy/systemd/$u")
    for l in "${host_env[@]}"; do [[ $l == SWITCHYARD_* ]] && vars+=("$l"); done
    env -i "${vars[@]}" "$bin/switchyard" config > /dev/null 2> "$work/err" ||
      fail "$u with switchyard.env.example: switchyard config: $(cat "$work/err")"
    env -i "${vars[@]}" "$bin/switchyard" -q -X bootstrap.servers=127.0.0.1:9 -X broker.timeout.ms=500 \
      status check-deploy-probe > /dev/null 2>&1
    rc=$?
    if [ "$rc" -eq 5 ]; then
      echo "check-deploy: ok: $u's environment (${#vars[@]} variables) is accepted by switchyard config and librdkafka"
    else
      fail "$u with switchyard.env.example: switchyard status exited $rc, expected 5 (broker unreachable)"
    fi
  done
fi
step_done systemd

# ---- EMR bootstrap ------------------------------------------------------------------------------
step emr
if [ -n "$bin" ]; then
  tests/deploy/test-emr-bootstrap.sh "$bin/switchyard" || fail "tests/deploy/test-emr-bootstrap.sh"
else
  fail "EMR bootstrap test skipped: no binaries"
fi
step_done emr

# ---- self-test: every checker fails on a broken input -------------------------------------------
step self-test
expect_fail() { # expect_fail DESCRIPTION REGEX COMMAND...: exit 1, and the output names the cause
  local what=$1 want=$2 rc
  shift 2
  "$@" > "$work/selftest.out" 2>&1
  rc=$?
  if [ "$rc" -eq 1 ] && grep -Eq -- "$want" "$work/selftest.out"; then
    echo "check-deploy: ok: fails as it should: $what"
  else
    fail "self-test: $what: exit $rc (expected 1 with /$want/); output: $(tail -n 5 "$work/selftest.out")"
  fi
}
mutate() { # mutate FILE OUT OLD NEW: OUT is FILE with the first OLD replaced by NEW (OLD must occur)
  python3 - "$@" << 'EOF'
import sys
src, out, old, new = sys.argv[1:5]
text = open(src).read()
if old not in text:
    sys.exit(f"mutate: {old!r} not in {src}")
open(out, "w").write(text.replace(old, new, 1))
EOF
}
if [ -s "$work/overlay.yaml" ]; then
  m=$work/mutated.yaml
  mutate "$work/overlay.yaml" "$m" "readinessProbe:" "readinesProbe:" &&
    expect_fail "k8svalidate: a misspelt Deployment field" 'unknown field.*readinesProbe' validate "$m"
  mutate "$work/overlay.yaml" "$m" "  cooldownPeriod: 300" "  cooldownPeriod: 300
  coolDownPeriod: 300" && expect_fail "k8svalidate: a field the ScaledObject CRD does not have" 'spec.coolDownPeriod: unknown field' validate "$m"
  mutate "$work/overlay.yaml" "$m" "terminationGracePeriodSeconds: 60" "terminationGracePeriodSeconds: 20" &&
    expect_fail "k8svalidate: a worker grace period shorter than its shutdown" 'terminationGracePeriodSeconds must be at least' validate "$m"
  mutate "$work/overlay.yaml" "$m" "consumerGroupFromEnv: SWITCHYARD_WORKER_GROUP_ID" \
    "consumerGroupFromEnv: SWITCHYARD_WORKER_GROUP" && expect_fail "k8svalidate: a KEDA variable the worker lacks" 'SWITCHYARD_WORKER_GROUP is not in the environment' validate "$m"
  mutate "$work/overlay.yaml" "$m" "- /usr/local/bin/switchyard-probe" "- /usr/local/bin/switchyard-probes" &&
    expect_fail "k8svalidate: a probe command the image lacks" 'switchyard-probes is not in the image' validate "$m"
fi
mutate deploy/iam/switchyard-worker-policy.json "$work/policy.json" '"elasticmapreduce:ListSteps"' \
  '"elasticmapreduce:ListSteps", "elasticmapreduce:TerminateJobFlows"' &&
  expect_fail "check-policy: a granted action no driver calls" 'TerminateJobFlows is granted but no code calls it' deploy/iam/check-policy --policy "$work/policy.json"
mutate deploy/iam/switchyard-worker-policy.json "$work/policy.json" \
  '"arn:aws:s3:::LOG_BUCKET/LOG_PREFIX/*"' '"*"' &&
  expect_fail "check-policy: Resource *" "Resource '\\*': scope it" deploy/iam/check-policy --policy "$work/policy.json"
mkdir -p "$work/fakerepo/worker"
printf 'int f(void) { return sy_aws_json_call(a, "emr", "ElasticMapReduce.RunJobFlow", b, &r, e); }\n' \
  > "$work/fakerepo/worker/sy_driver_emr.c"
expect_fail "check-policy: the code calls an action the policy lacks" 'calls elasticmapreduce:RunJobFlow' \
  deploy/iam/check-policy --repo "$work/fakerepo"
mkdir -p "$work/shrepo"
# shellcheck disable=SC2016 # the $1 is meant for the script written, unexpanded
printf '#!/bin/sh\nrm -rf $1/tmp\n' > "$work/shrepo/bad.sh"
expect_fail "shellcheck-all: an unquoted variable" 'FAIL: bad.sh:2:.*SC2086' tests/deploy/shellcheck-all --repo "$work/shrepo"
if [ -n "$bin" ]; then
  mutate deploy/docker/Dockerfile "$work/Dockerfile" " libpq5 " " " &&
    expect_fail "check-build: a runtime library missing from the runtime stage" \
      'needs libpq.so.5 from libpq5, which the runtime stage does not install' \
      deploy/docker/check-build --dockerfile "$work/Dockerfile" --scratch "$cache/docker"
fi
step_done self-test

echo
if [ ${#failures[@]} -gt 0 ]; then
  echo "check-deploy: ${#failures[@]} failure(s) in $((SECONDS - start_all)) s:"
  printf '  - %s\n' "${failures[@]}"
  exit 1
fi
echo "check-deploy: all deploy checks passed in $((SECONDS - start_all)) s"
