#!/bin/bash
# bootstrap-register.sh: an EMR bootstrap action that registers the cluster in Switchyard's
# registry when it starts, and marks it TERMINATED when it shuts down.
#
# Bootstrap actions run once, on every node, before the applications are installed. On the
# master node this script installs itself and a systemd unit (switchyard-emr-register.service)
# whose ExecStart registers the cluster and whose ExecStop, run at shutdown, marks it TERMINATED
# when EMR says the cluster is going away. Other nodes do nothing.
#
#   --database-url-secret ID   Secrets Manager secret (name or ARN) whose SecretString is the
#                              registry's PostgreSQL URL (required). Never pass the URL itself:
#                              bootstrap arguments are visible in DescribeCluster.
#   --name NAME                registry name (default: the EMR cluster id, e.g. j-2AXXXXXXGAPLF)
#   --tags T,...               the cluster's tags (key:value, comma-separated)
#   --weight N                 weighted-random selection weight (default 1)
#   --max-concurrent N         concurrency limit, 0 = EMR's 256 active steps (default 0)
#   --status UP|OUT_OF_SERVICE initial status (default UP; OUT_OF_SERVICE to add it without
#                              traffic and switch it on later, e.g. for an upgrade)
#   --region R                 AWS region (default: from the instance metadata)
#   --cli PATH                 the switchyard CLI on the node (default /usr/local/bin/switchyard)
#   --cli-url s3://...         download the CLI from S3 to --cli first
#
# Registration (ExecStart, also on every reboot):
#   - not registered: `switchyard clusters add NAME --kind emr --address <cluster id> ...`;
#   - registered with this cluster id: left exactly as it is (tags may have been moved and the
#     status changed since: a reboot must not undo that);
#   - the name is registered for another address: fails (use one name per cluster, and move
#     tags from the old cluster to the new one).
# Deregistration (ExecStop): asks EMR for the cluster's state (aws emr describe-cluster):
#   TERMINATING / TERMINATED / TERMINATED_WITH_ERRORS -> status TERMINATED; still running (a
#   reboot, or one master of several stopping) -> unchanged; unknown -> OUT_OF_SERVICE, so that no
#   new job goes to a cluster that may be gone.
# PostgreSQL unreachable: retried for up to 5 minutes at start, 1 minute at stop (in all). A failed
# registration fails the bootstrap action (and so the cluster), rather than leaving a cluster
# running that receives no jobs.
#
# The node's instance profile needs secretsmanager:GetSecretValue on the secret,
# elasticmapreduce:DescribeCluster on the cluster, and s3:GetObject for --cli-url.
#
# For tests: SY_EMR_ROOT installs under that directory instead of / (and never uses sudo),
# SY_EMR_INFO_DIR replaces /mnt/var/lib/info, SY_EMR_RETRY_S the start retry budget.
set -euo pipefail

prog=bootstrap-register
root=${SY_EMR_ROOT:-}
info_dir=${SY_EMR_INFO_DIR:-/mnt/var/lib/info}
unit_name=switchyard-emr-register.service
helper=$root/usr/local/libexec/switchyard/emr-register
env_file=$root/etc/switchyard/emr-register.env
unit_file=$root/etc/systemd/system/$unit_name

log() { echo "$prog: $*" >&2; }
die() {
  log "$*"
  exit 1
}

as_root() {
  if [ -n "$root" ] || [ "$(id -u)" -eq 0 ]; then
    "$@"
  else
    sudo "$@"
  fi
}

# json_string FILE KEY: the string value of "KEY" in a flat JSON file (EMR's info files).
json_string() {
  sed -n 's/.*"'"$2"'"[[:space:]]*:[[:space:]]*"\([^"]*\)".*/\1/p' "$1" | head -n 1
}

is_master() {
  grep -Eq '"isMaster"[[:space:]]*:[[:space:]]*true' "$info_dir/instance.json" 2>/dev/null
}

imds_region() {
  local token
  token=$(curl -sf -m 2 -X PUT -H 'X-aws-ec2-metadata-token-ttl-seconds: 60' \
    http://169.254.169.254/latest/api/token) || return 1
  curl -sf -m 2 -H "X-aws-ec2-metadata-token: $token" \
    http://169.254.169.254/latest/meta-data/placement/region
}

# ---- ExecStart / ExecStop (run by systemd with the env file) ---------------------------------

# Runs the CLI with the database URL in its environment only (never on a command line).
cli() {
  local url
  url=$(aws secretsmanager get-secret-value --region "$SY_EMR_REGION" \
    --secret-id "$SY_EMR_DB_SECRET" --query SecretString --output text) ||
    die "cannot read secret $SY_EMR_DB_SECRET"
  SWITCHYARD_DATABASE_URL=$url "$SY_EMR_CLI" -q "$@"
}

# cli_retry ARGS...: retries while the database is unreachable (exit 5), until $deadline
# (in $SECONDS). The unit's start and stop timeouts allow for the budget plus one more attempt.
cli_retry() {
  local delay=2 rc
  while :; do
    rc=0
    cli "$@" || rc=$?
    [ "$rc" -eq 5 ] || return "$rc"
    [ $((SECONDS + delay)) -lt "$deadline" ] || return "$rc"
    log "PostgreSQL unreachable; retrying in ${delay}s"
    sleep "$delay"
    delay=$((delay < 30 ? delay * 2 : 30))
  done
}

registered_address() { # prints the address of $SY_EMR_NAME; exit status as `clusters show`
  local out rc=0
  out=$(cli_retry clusters show "$SY_EMR_NAME") || rc=$?
  [ "$rc" -eq 0 ] || return "$rc"
  awk '$1 == "address:" { print $2 }' <<<"$out"
}

do_start() {
  local addr rc=0 args
  deadline=$((SECONDS + ${SY_EMR_RETRY_S:-300}))
  addr=$(registered_address) || rc=$?
  case $rc in
    0)
      if [ "$addr" = "$SY_EMR_CLUSTER_ID" ]; then
        log "cluster $SY_EMR_NAME ($SY_EMR_CLUSTER_ID) is registered already; leaving its tags and status as they are"
        return 0
      fi
      die "the name $SY_EMR_NAME is registered for $addr, not $SY_EMR_CLUSTER_ID: give this cluster its own name"
      ;;
    4) ;;
    *) die "switchyard clusters show $SY_EMR_NAME failed (exit $rc)" ;;
  esac
  args=(clusters add "$SY_EMR_NAME" --kind emr --address "$SY_EMR_CLUSTER_ID"
    --region "$SY_EMR_REGION" --weight "$SY_EMR_WEIGHT" --max-concurrent "$SY_EMR_MAX_CONCURRENT"
    --status "$SY_EMR_STATUS")
  [ -z "$SY_EMR_TAGS" ] || args+=(--tags "$SY_EMR_TAGS")
  cli_retry "${args[@]}" >/dev/null ||
    die "switchyard clusters add $SY_EMR_NAME failed"
  log "registered $SY_EMR_NAME ($SY_EMR_CLUSTER_ID, $SY_EMR_STATUS, tags ${SY_EMR_TAGS:-none})"
}

do_stop() {
  local addr rc=0 state status
  deadline=$((SECONDS + 60))
  addr=$(registered_address) || rc=$?
  if [ "$rc" -eq 4 ]; then
    log "$SY_EMR_NAME is not registered; nothing to do"
    return 0
  elif [ "$rc" -ne 0 ]; then
    die "switchyard clusters show $SY_EMR_NAME failed (exit $rc)"
  elif [ "$addr" != "$SY_EMR_CLUSTER_ID" ]; then
    log "$SY_EMR_NAME now names $addr; leaving it alone"
    return 0
  fi
  state=$(aws emr describe-cluster --region "$SY_EMR_REGION" --cluster-id "$SY_EMR_CLUSTER_ID" \
    --query Cluster.Status.State --output text 2>/dev/null) || state=""
  case $state in
    TERMINATING | TERMINATED | TERMINATED_WITH_ERRORS) status=TERMINATED ;;
    STARTING | BOOTSTRAPPING | RUNNING | WAITING)
      log "cluster $SY_EMR_CLUSTER_ID is $state (a reboot, or another master takes over); status unchanged"
      return 0
      ;;
    *)
      status=OUT_OF_SERVICE
      log "cannot tell the cluster's state (${state:-no answer}); taking it out of service"
      ;;
  esac
  cli_retry clusters set-status "$SY_EMR_NAME" "$status" >/dev/null ||
    die "switchyard clusters set-status $SY_EMR_NAME $status failed"
  log "$SY_EMR_NAME ($SY_EMR_CLUSTER_ID) is now $status"
}

# ---- the bootstrap action --------------------------------------------------------------------

do_bootstrap() {
  local secret="" name="" tags="" weight=1 max_concurrent=0 status=UP region="" cli_path=/usr/local/bin/switchyard cli_url=""
  while [ $# -gt 0 ]; do
    [ $# -ge 2 ] || die "option $1 needs a value"
    case $1 in
      --database-url-secret) secret=$2 ;;
      --name) name=$2 ;;
      --tags) tags=$2 ;;
      --weight) weight=$2 ;;
      --max-concurrent) max_concurrent=$2 ;;
      --status) status=$2 ;;
      --region) region=$2 ;;
      --cli) cli_path=$2 ;;
      --cli-url) cli_url=$2 ;;
      *) die "unknown option $1" ;;
    esac
    shift 2
  done
  if ! is_master; then
    log "not the master node; nothing to do"
    return 0
  fi
  [ -n "$secret" ] || die "--database-url-secret is required"
  case $status in UP | OUT_OF_SERVICE) ;; *) die "--status must be UP or OUT_OF_SERVICE" ;; esac
  [[ $weight =~ ^[0-9]+$ && $max_concurrent =~ ^[0-9]+$ ]] || die "--weight and --max-concurrent take numbers"
  [[ -z $tags || $tags =~ ^[^,[:space:]]+:[^,[:space:]]*(,[^,[:space:]]+:[^,[:space:]]*)*$ ]] ||
    die "--tags: key:value[,key:value...] without spaces"
  local cluster_id
  cluster_id=$(json_string "$info_dir/job-flow.json" jobFlowId)
  [[ $cluster_id =~ ^j-[A-Za-z0-9]+$ ]] || die "no cluster id in $info_dir/job-flow.json"
  name=${name:-$cluster_id}
  [ -n "$region" ] || region=$(imds_region) || die "no --region and no instance metadata"

  if [ -n "$cli_url" ]; then
    local tmp
    tmp=$(mktemp)
    aws s3 cp --only-show-errors "$cli_url" "$tmp" || die "cannot download $cli_url"
    as_root install -D -m 0755 "$tmp" "$root$cli_path"
    rm -f "$tmp"
  fi
  # The CLI must run on this node (its shared libraries: librdkafka, avro-c, libpq, jansson,
  # libcurl). --help needs no configuration.
  "$root$cli_path" --help >/dev/null 2>&1 || die "$root$cli_path does not run on this node"

  as_root install -D -m 0755 "$0" "$helper"
  local conf
  conf=$(mktemp)
  cat >"$conf" <<EOF
SY_EMR_CLUSTER_ID=$cluster_id
SY_EMR_NAME=$name
SY_EMR_TAGS=$tags
SY_EMR_WEIGHT=$weight
SY_EMR_MAX_CONCURRENT=$max_concurrent
SY_EMR_STATUS=$status
SY_EMR_REGION=$region
SY_EMR_DB_SECRET=$secret
SY_EMR_CLI=$root$cli_path
EOF
  as_root install -D -m 0600 "$conf" "$env_file"
  cat >"$conf" <<EOF
[Unit]
Description=Switchyard: register this EMR cluster at start, mark it TERMINATED at shutdown
Wants=network-online.target
After=network-online.target

[Service]
Type=oneshot
RemainAfterExit=yes
EnvironmentFile=$env_file
ExecStart=$helper start
ExecStop=$helper stop
TimeoutStartSec=400
TimeoutStopSec=150

[Install]
WantedBy=multi-user.target
EOF
  as_root install -D -m 0644 "$conf" "$unit_file"
  rm -f "$conf"
  as_root systemctl daemon-reload
  as_root systemctl enable "$unit_name"
  # Synchronous: a oneshot unit's start returns when ExecStart has finished.
  as_root systemctl start "$unit_name" || die "registration failed: journalctl -u $unit_name"
  log "installed $unit_name; cluster $cluster_id registered as $name"
}

case ${1:-} in
  start | stop)
    : "${SY_EMR_CLUSTER_ID:?}" "${SY_EMR_NAME:?}" "${SY_EMR_REGION:?}" "${SY_EMR_DB_SECRET:?}" "${SY_EMR_CLI:?}"
    SY_EMR_TAGS=${SY_EMR_TAGS:-} SY_EMR_WEIGHT=${SY_EMR_WEIGHT:-1}
    SY_EMR_MAX_CONCURRENT=${SY_EMR_MAX_CONCURRENT:-0} SY_EMR_STATUS=${SY_EMR_STATUS:-UP}
    if [ "$1" = start ]; then do_start; else do_stop; fi
    ;;
  *) do_bootstrap "$@" ;;
esac
