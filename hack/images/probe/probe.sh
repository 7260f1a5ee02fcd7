#!/bin/sh
# pipeline-probe: stands in for one stage of a pipeline-parallel serving engine in tests.
#
# It listens on TCP $GREENSHARD_PROBE_PORT (default 29500, torch.distributed's usual port), then
# checks the pipeline variables that GreenShard sets on every shard pod:
#   GREENSHARD_LEADER_ADDRESS   stage 0 of this pipeline replica (every stage, stage 0 included)
#   GREENSHARD_PREV_ADDRESS     the previous stage (empty on stage 0)
#   GREENSHARD_NEXT_ADDRESS     the next stage (empty on the last stage)
# An address is HOST or HOST:PORT (no port: GREENSHARD_PROBE_PORT). For each one it resolves
# HOST by DNS and opens a TCP connection, retrying until GREENSHARD_PROBE_TIMEOUT seconds
# (default 180) have passed. Every attempt prints one line per address:
#   probe: leader HOST:PORT -> IP connected | probe: next HOST:PORT unresolved | ... refused
# When all connect it prints "PIPELINE-PROBE OK stage=S/N pipeline=R/P ..." once, touches
# /tmp/pipeline-ok (a readiness probe can `cat` it) and keeps serving its port; on timeout it
# prints "PIPELINE-PROBE FAIL ..." and exits 1 (the pod restarts: the failure shows).
# Inconsistent variables (a stage > 0 without PREV, a missing leader, ...) fail at once.
set -u

PORT=${GREENSHARD_PROBE_PORT:-29500}
TIMEOUT=${GREENSHARD_PROBE_TIMEOUT:-180}
STAGE=${GREENSHARD_SHARD_INDEX:-}
STAGES=${GREENSHARD_SHARD_COUNT:-}
PIPE=${GREENSHARD_PIPELINE_INDEX:-}
PIPES=${GREENSHARD_PIPELINE_COUNT:-}
LEADER=${GREENSHARD_LEADER_ADDRESS:-}
PREV=${GREENSHARD_PREV_ADDRESS:-}
NEXT=${GREENSHARD_NEXT_ADDRESS:-}
WHO="stage=$STAGE/$STAGES pipeline=$PIPE/$PIPES host=$(hostname)"

fail() { echo "PIPELINE-PROBE FAIL $WHO: $*"; exit 1; }

# The variables must describe a pipeline.
[ -n "$STAGE" ] && [ -n "$STAGES" ] || fail "GREENSHARD_SHARD_INDEX / GREENSHARD_SHARD_COUNT not set"
[ -n "$LEADER" ] || fail "GREENSHARD_LEADER_ADDRESS not set"
if [ "$STAGE" -gt 0 ] && [ -z "$PREV" ]; then fail "stage $STAGE has no GREENSHARD_PREV_ADDRESS"; fi
if [ "$STAGE" -eq 0 ] && [ -n "$PREV" ]; then fail "stage 0 has GREENSHARD_PREV_ADDRESS=$PREV"; fi
LAST=$((STAGES - 1))
if [ "$STAGE" -lt "$LAST" ] && [ -z "$NEXT" ]; then fail "stage $STAGE of $STAGES has no GREENSHARD_NEXT_ADDRESS"; fi
if [ "$STAGE" -eq "$LAST" ] && [ -n "$NEXT" ]; then fail "the last stage has GREENSHARD_NEXT_ADDRESS=$NEXT"; fi

# Serve the port: every connection is accepted and closed.
nc -ll -p "$PORT" -e /bin/true &

host_of() { case "$1" in *:*) echo "${1%:*}" ;; *) echo "$1" ;; esac; }
port_of() { case "$1" in *:*) echo "${1##*:}" ;; *) echo "$PORT" ;; esac; }
SEARCH=$(sed -n 's/^search //p' /etc/resolv.conf 2>/dev/null | tail -n 1)
lookup() { nslookup "$1" 2>/dev/null | sed -n '/^Name:/,$ s/^Address: *\([0-9.]*\)$/\1/p' | head -n 1; }
resolve() {  # the first IPv4 address of HOST, by DNS, through the search domains as libc would
  case "$1" in
    *.) lookup "$1"; return ;;
  esac
  for domain in $SEARCH; do
    ip=$(lookup "$1.$domain")
    if [ -n "$ip" ]; then echo "$ip"; return; fi
  done
  lookup "$1"
}
check() {  # check ROLE ADDRESS: 0 when HOST resolves and accepts a TCP connection
  host=$(host_of "$2"); port=$(port_of "$2")
  ip=$(resolve "$host")
  if [ -z "$ip" ]; then echo "probe: $1 $host:$port unresolved"; return 1; fi
  if nc -w 3 "$ip" "$port" </dev/null >/dev/null 2>&1; then
    echo "probe: $1 $host:$port -> $ip connected"; return 0
  fi
  echo "probe: $1 $host:$port -> $ip refused"; return 1
}

start=$(date +%s)
while :; do
  ok=1
  summary=""
  for role in leader prev next; do
    case $role in leader) addr=$LEADER ;; prev) addr=$PREV ;; next) addr=$NEXT ;; esac
    [ -n "$addr" ] || continue
    if check "$role" "$addr"; then summary="$summary $role=$addr"; else ok=0; fi
  done
  if [ "$ok" = 1 ]; then
    echo "PIPELINE-PROBE OK $WHO$summary"
    : > /tmp/pipeline-ok
    break
  fi
  if [ $(( $(date +%s) - start )) -ge "$TIMEOUT" ]; then
    fail "not every neighbour reachable after ${TIMEOUT}s"
  fi
  sleep 2
done
wait
