#!/usr/bin/env bash
# The local Kubernetes cluster of GreenShard's tests and demo: real etcd,
# kube-apiserver, kube-controller-manager and kube-scheduler on loopback, the
# KWOK controller standing in for the kubelets of many nodes (pods that the
# scheduler binds to KWOK nodes are marked Running, nothing runs), and a real
# node: this machine, with kubelet on containerd + runc, a CNI bridge,
# kube-proxy and CoreDNS, where pods do run (hack/real-node.sh; needs root and
# installs its Debian packages itself).  Real nodes are tainted
# greenshard.dev/real-node=true:NoSchedule and labelled
# greenshard.dev/real-node=true: only pods that tolerate the taint run there.
#
# Usage: hack/cluster.sh COMMAND [OPTIONS]
#   up [--nodes-file FILE | --nodes N] [--timeout SECONDS]
#        start everything (generated PKI, free loopback ports, RBAC + Node
#        authorisation, PodSecurity admission), create the KWOK nodes and
#        wait until every node is Ready.  Already up: says so, exits 0.
#        --nodes-file FILE  a NodeList YAML (as `kubectl get nodes -o yaml`
#                           prints it) instead of hack/nodes.yaml; labels,
#                           taints, allocatable and spec.unschedulable kept
#        --nodes N          N nodes cycling through the shapes (regions x
#                           accelerators) of the nodes file, for scale tests
#        --real-nodes-file FILE  a NodeList of the real node (one: this machine):
#                           its name, labels, taints and extended resources
#                           (status.capacity, e.g. nvidia.com/gpu: "4", patched
#                           into the node's status like a device plugin would);
#                           default hack/real-nodes.yaml; "none": KWOK only
#        --scheduler-config FILE  a KubeSchedulerConfiguration whose settings
#                           (e.g. extenders, profiles: see
#                           hack/scheduler-config.yaml) kube-scheduler runs
#                           with; the script adds clientConnection and
#                           leaderElection (default: none, the defaults)
#   down        stop every component (no process is left) and remove the state
#               (the logs stay in STATE/logs until the next up); a real node
#               leaves no container, mount, netns, link, iptables rule or cgroup
#   status      components, pids, ports, node readiness and the real nodes;
#               exit 1 if not up
#   load IMAGE...  import images built by hack/build-images.sh (greenshard,
#               probe, ...) into the real node's containerd
#   kubeconfig  print the admin kubeconfig path
#   logs [COMPONENT]  print the log path(s), or tail one component's log
#   restart COMPONENT [--kill]  stop one component (SIGTERM, or SIGKILL with
#               --kill) and start it again with the same command line and
#               ports, then wait until it is healthy (fault-injection tests)
#
# Env: GREENSHARD_CLUSTER_DIR  state dir (default hack/.state/cluster):
#                              pki/, logs/, pids/, etcd data, kubeconfig
#      GREENSHARD_BIN_DIR      binaries (default hack/bin, built by
#                              hack/build-tools.sh)
#      GREENSHARD_SCHEDULER_CONFIG  default of up --scheduler-config
#      GREENSHARD_REAL_NODES_FILE   default of up --real-nodes-file
#      KUBECTL                 kubectl to use (default: hack/bin/kubectl if
#                              built, else the one on PATH)
set -euo pipefail

HACK_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
BIN_DIR=${GREENSHARD_BIN_DIR:-$HACK_DIR/bin}
STATE_DIR=${GREENSHARD_CLUSTER_DIR:-$HACK_DIR/.state/cluster}
mkdir -p "$STATE_DIR"
STATE_DIR=$(cd "$STATE_DIR" && pwd)
[[ -d "$BIN_DIR" ]] && BIN_DIR=$(cd "$BIN_DIR" && pwd -P)
PKI=$STATE_DIR/pki
LOGS=$STATE_DIR/logs
PIDS=$STATE_DIR/pids
KUBECONFIG_PATH=$STATE_DIR/kubeconfig
PORTS_FILE=$STATE_DIR/ports.env
LOCK_FILE=$STATE_DIR.lock
MARKER=$STATE_DIR/.greenshard-cluster  # only a dir with it is ever emptied
# shellcheck source-path=SCRIPTDIR source=versions.env
source "$HACK_DIR/versions.env"

COMPONENTS=(etcd kube-apiserver kube-controller-manager kube-scheduler kwok)
REAL_NODE_FILE=$STATE_DIR/real-node   # the real node's name, while there is one
SERVICE_CIDR=10.96.0.0/16
SERVICE_IP=10.96.0.1
POD_CIDR=10.244.0.0/16
SA_ISSUER=https://kubernetes.default.svc.cluster.local
CLUSTER_NAME=greenshard-local

if [[ -z "${KUBECTL:-}" ]]; then
  if [[ -x "$BIN_DIR/kubectl" ]]; then KUBECTL=$BIN_DIR/kubectl
  else KUBECTL=$(command -v kubectl || true); fi
fi

log() { printf '[cluster] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
kc() { "$KUBECTL" --kubeconfig "$KUBECONFIG_PATH" --request-timeout=30s "$@"; }

# shellcheck source-path=SCRIPTDIR source=real-node.sh
source "$HACK_DIR/real-node.sh"
has_real_node() { [[ -s "$REAL_NODE_FILE" ]]; }
if has_real_node; then COMPONENTS+=($(node_components)); fi

# --- processes --------------------------------------------------------------
# A component's pid counts only while that process still names this state dir
# on its command line (so a recycled pid is never taken for ours).
pid_of() {
  local f="$PIDS/$1.pid" pid
  [[ -f "$f" ]] || return 1
  pid=$(cat "$f")
  [[ -n "$pid" && -r /proc/$pid/cmdline ]] || return 1
  tr '\0' ' ' < "/proc/$pid/cmdline" | grep -qF -- "$STATE_DIR" || return 1
  echo "$pid"
}
alive() { pid_of "$1" >/dev/null; }

start() {  # start NAME CMD...: in its own session, logging to logs/NAME.log
  local name=$1; shift
  mkdir -p "$LOGS" "$PIDS"
  printf '=== %s: %s\n' "$(date -Is)" "$*" >> "$LOGS/$name.log"
  setsid "$@" >> "$LOGS/$name.log" 2>&1 < /dev/null 9>&- &
  local pid=$! i
  echo "$pid" > "$PIDS/$name.pid"
  # Until the child has exec'd: before that its command line is this script's, which need not
  # name $STATE_DIR (GREENSHARD_CLUSTER_DIR comes from the environment), and `alive` would call
  # a component that is only slow to start dead (seen: "kube-proxy exited during startup" with
  # an empty log, on a loaded machine).
  for (( i=0; i<100; i++ )); do
    [[ -r /proc/$pid/cmdline ]] || break
    tr '\0' ' ' < "/proc/$pid/cmdline" | grep -qF -- "$STATE_DIR" && break
    sleep 0.05
  done
}

# Our binaries still running with this state dir on their command line: ours,
# even if a pid file was lost.
stray_pids() {
  local d exe
  for d in /proc/[0-9]*; do
    exe=$(readlink "$d/exe" 2>/dev/null) || continue
    [[ "$exe" == "$BIN_DIR/"* ]] || continue
    tr '\0' '\n' < "$d/cmdline" 2>/dev/null | grep -qF -- "$STATE_DIR/" && echo "${d#/proc/}"
  done 2>/dev/null || true
}

stop_all() {
  local name pid pids=() i
  if has_real_node || [[ -d "$STATE_DIR/node" ]]; then node_down; fi
  for (( i=${#COMPONENTS[@]}-1; i>=0; i-- )); do
    name=${COMPONENTS[$i]}
    if pid=$(pid_of "$name"); then pids+=("$pid"); kill -TERM "$pid" 2>/dev/null || true; fi
    rm -f "$PIDS/$name.pid"
  done
  for pid in $(stray_pids); do pids+=("$pid"); kill -TERM "$pid" 2>/dev/null || true; done
  for (( i=0; i<100; i++ )); do  # up to 10 s, then SIGKILL
    local left=()
    for pid in "${pids[@]}"; do [[ -d /proc/$pid ]] && left+=("$pid"); done
    (( ${#left[@]} == 0 )) && return 0
    sleep 0.1
  done
  for pid in "${left[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
  sleep 0.2
}

fail() {  # fail COMPONENT MESSAGE: show its log's tail, stop everything, exit 1
  local name=$1; shift
  log "ERROR: $*"
  if [[ -f "$LOGS/$name.log" ]]; then
    log "---- last 40 lines of $LOGS/$name.log ----"
    tail -n 40 "$LOGS/$name.log" >&2
    log "---- end of $name log ----"
  fi
  log "stopping the partial cluster (logs kept in $LOGS)"
  stop_all
  exit 1
}

# wait_for NAME TIMEOUT CMD...: until CMD succeeds, while NAME stays alive.
wait_for() {
  local name=$1 timeout=$2; shift 2
  local t0=$SECONDS
  until "$@" >/dev/null 2>&1; do
    alive "$name" || fail "$name" "$name exited during startup"
    (( SECONDS - t0 < timeout )) || fail "$name" "$name not ready after ${timeout}s"
    sleep 0.2
  done
}

# Empties the state dir (keeping the entries named in $@), but only if it is
# ours: empty, or marked as a GreenShard cluster state dir.
clean_state() {
  if [[ ! -f "$MARKER" ]] && [[ -n "$(ls -A "$STATE_DIR")" ]]; then
    die "refusing to empty $STATE_DIR: not empty and not a cluster state dir (no $MARKER)"
  fi
  local keep=() k
  for k in "$@"; do keep+=(! -name "$k"); done
  find "$STATE_DIR" -mindepth 1 -maxdepth 1 ! -name .greenshard-cluster "${keep[@]}" -exec rm -rf {} +
  touch "$MARKER"
}

# --- setup ------------------------------------------------------------------
free_ports() {  # N free TCP ports on 127.0.0.1, outside the ephemeral range
  python3 - "$1" <<'EOF'
import random, socket, sys
n, socks, ports = int(sys.argv[1]), [], []
candidates = random.sample(range(20000, 32000), 400)
for p in candidates:
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", p))
    except OSError:
        s.close(); continue
    socks.append(s); ports.append(p)
    if len(ports) == n:
        break
print(" ".join(map(str, ports)))
EOF
}

gen_pki() {
  mkdir -p "$PKI"
  (
    cd "$PKI"
    openssl_q() { openssl "$@" 2>/dev/null; }
    # ECDSA P-256 keys: as good as RSA here and 100x faster to generate.
    newkey() { openssl_q genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1"; }
    # ca: the cluster CA (serving + client certs); front-proxy-ca: the
    # aggregation layer's request-header authentication, as kubeadm sets it up.
    for ca in ca front-proxy-ca; do
      newkey "$ca.key"
      openssl_q req -x509 -new -key "$ca.key" -subj "/CN=$CLUSTER_NAME-$ca" -days 3650 -out "$ca.crt"
    done
    cert() {  # cert NAME SUBJECT EXTENSIONS [CA]
      local ca=${4:-ca}
      newkey "$1.key"
      openssl_q req -new -key "$1.key" -subj "$2" -out "$1.csr"
      printf '%b' "$3" > "$1.ext"
      openssl_q x509 -req -in "$1.csr" -CA "$ca.crt" -CAkey "$ca.key" -CAcreateserial \
        -days 3650 -extfile "$1.ext" -out "$1.crt"
      rm -f "$1.csr" "$1.ext"
    }
    local client='keyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n'
    cert apiserver "/CN=kube-apiserver" \
      "keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,IP:$SERVICE_IP,IP:$NODE_GATEWAY,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local\n"
    cert admin "/O=system:masters/CN=kubernetes-admin" "$client"
    cert kube-controller-manager "/CN=system:kube-controller-manager" "$client"
    cert kube-scheduler "/CN=system:kube-scheduler" "$client"
    cert kwok "/O=system:masters/CN=kwok-controller" "$client"
    cert kube-apiserver-kubelet-client "/O=system:masters/CN=kube-apiserver-kubelet-client" "$client"
    cert front-proxy-client "/CN=front-proxy-client" "$client" front-proxy-ca
    newkey sa.key
    openssl_q pkey -in sa.key -pubout -out sa.pub
    chmod 600 ./*.key
  ) || die "generating certificates with openssl failed"
}

write_kubeconfig() {  # write_kubeconfig FILE USER [embed]
  local file=$1 user=$2 server="https://127.0.0.1:$API_PORT"
  if [[ "${3:-}" == embed ]]; then
    cat > "$file" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: $CLUSTER_NAME
  cluster:
    server: $server
    certificate-authority-data: $(base64 -w0 < "$PKI/ca.crt")
users:
- name: $user
  user:
    client-certificate-data: $(base64 -w0 < "$PKI/$user.crt")
    client-key-data: $(base64 -w0 < "$PKI/$user.key")
contexts:
- name: $CLUSTER_NAME
  context: {cluster: $CLUSTER_NAME, user: $user}
current-context: $CLUSTER_NAME
EOF
  else
    cat > "$file" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: $CLUSTER_NAME
  cluster: {server: "$server", certificate-authority: "$PKI/ca.crt"}
users:
- name: $user
  user: {client-certificate: "$PKI/$user.crt", client-key: "$PKI/$user.key"}
contexts:
- name: $CLUSTER_NAME
  context: {cluster: $CLUSTER_NAME, user: $user}
current-context: $CLUSTER_NAME
EOF
  fi
  chmod 600 "$file"
}

https_ok() {  # https_ok PORT PATH: the endpoint answers "ok"
  [[ "$(curl -s --max-time 2 --cacert "$PKI/ca.crt" --cert "$PKI/admin.crt" --key "$PKI/admin.key" \
        -k "https://127.0.0.1:$1$2")" == ok ]]
}
etcd_ok() { curl -s --max-time 2 "http://127.0.0.1:$ETCD_PORT/health" | grep -q '"health":"true"'; }

# --- commands -----------------------------------------------------------------
all_alive() { local c; for c in "${COMPONENTS[@]}"; do alive "$c" || return 1; done; }
any_alive() { local c; for c in "${COMPONENTS[@]}"; do alive "$c" && return 0; done; [[ -n "$(stray_pids)" ]]; }

cmd_up() {
  local nodes_file=$HACK_DIR/nodes.yaml nodes_n="" timeout=${GREENSHARD_CLUSTER_TIMEOUT:-180}
  local sched_config=${GREENSHARD_SCHEDULER_CONFIG:-}
  local real_file=${GREENSHARD_REAL_NODES_FILE:-$HACK_DIR/real-nodes.yaml}
  while (( $# )); do
    case "$1" in
      --nodes-file) nodes_file=${2:?--nodes-file needs a FILE}; shift 2 ;;
      --nodes-file=*) nodes_file=${1#*=}; shift ;;
      --nodes) nodes_n=${2:?--nodes needs a number}; shift 2 ;;
      --nodes=*) nodes_n=${1#*=}; shift ;;
      --timeout) timeout=${2:?}; shift 2 ;;
      --timeout=*) timeout=${1#*=}; shift ;;
      --real-nodes-file) real_file=${2:?--real-nodes-file needs a FILE or none}; shift 2 ;;
      --real-nodes-file=*) real_file=${1#*=}; shift ;;
      --scheduler-config) sched_config=${2:?--scheduler-config needs a FILE}; shift 2 ;;
      --scheduler-config=*) sched_config=${1#*=}; shift ;;
      *) die "up: unknown argument: $1 (see hack/cluster.sh --help)" ;;
    esac
  done
  [[ -f "$nodes_file" ]] || die "no such nodes file: $nodes_file"
  if [[ "$real_file" != none ]]; then
    [[ -f "$real_file" ]] || die "no such real nodes file: $real_file (or --real-nodes-file none)"
    real_file=$(cd "$(dirname "$real_file")" && pwd)/$(basename "$real_file")
  fi
  nodes_file=$(cd "$(dirname "$nodes_file")" && pwd)/$(basename "$nodes_file")
  [[ -z "$nodes_n" || "$nodes_n" =~ ^[1-9][0-9]*$ ]] || die "--nodes wants a positive number, not '$nodes_n'"
  if [[ -n "$sched_config" ]]; then
    [[ -f "$sched_config" ]] || die "no such scheduler config: $sched_config"
    grep -q '^kind: *KubeSchedulerConfiguration' "$sched_config" \
      || die "$sched_config: not a KubeSchedulerConfiguration (kind: KubeSchedulerConfiguration)"
    ! grep -Eq '^(clientConnection|leaderElection):' "$sched_config" \
      || die "$sched_config: drop clientConnection and leaderElection: hack/cluster.sh sets them"
  fi

  if all_alive && [[ -f "$PORTS_FILE" ]]; then
    # shellcheck source=/dev/null
    source "$PORTS_FILE"
    if https_ok "$API_PORT" /readyz; then
      log "already up ($(kc get nodes --no-headers 2>/dev/null | wc -l) nodes); kubeconfig: $KUBECONFIG_PATH"
      if [[ "$(cat "$STATE_DIR/nodes.source" 2>/dev/null)" != "$nodes_file ${nodes_n:-all} $real_file" ]]; then
        log "WARNING: it was started with the nodes of $(cat "$STATE_DIR/nodes.source" 2>/dev/null)," \
            "not $nodes_file ${nodes_n:-all} $real_file: run hack/cluster.sh down first to change them"
      fi
      echo "$KUBECONFIG_PATH"
      return 0
    fi
  fi
  if any_alive; then log "found a partial cluster in $STATE_DIR: stopping it first"; stop_all; fi

  local b missing=()
  for b in etcd kube-apiserver kube-controller-manager kube-scheduler kwok; do
    [[ -x "$BIN_DIR/$b" ]] || missing+=("$b")
  done
  (( ${#missing[@]} == 0 )) || die "missing in $BIN_DIR: ${missing[*]}; run hack/build-tools.sh"
  [[ -n "$KUBECTL" ]] || die "no kubectl: run hack/build-tools.sh"
  command -v openssl >/dev/null || die "openssl is needed to generate the certificates"
  command -v python3 >/dev/null || die "python3 is needed (free ports, node files)"
  [[ "$real_file" == none ]] || node_check_prereqs

  local t0 t
  t0=$(now)
  # Fresh state: nothing of a previous cluster is kept.
  clean_state
  mkdir -p "$LOGS" "$PIDS"
  local real_name="" bind_address=127.0.0.1 advertise_address=127.0.0.1 reconciler=none
  if [[ "$real_file" != none ]]; then
    mkdir -p "$STATE_DIR/node"
    node_claim
    node_ip > "$STATE_DIR/node/node-ip"
    [[ -s "$STATE_DIR/node/node-ip" ]] || die "cannot tell this machine's IP address (ip route get)"
    node_prepare_network
    # The API on every address, advertised to pods on the bridge (the kubernetes Service).
    bind_address=0.0.0.0 advertise_address=$NODE_GATEWAY reconciler=lease
  fi
  gen_pki
  read -r ETCD_PORT ETCD_PEER_PORT API_PORT KCM_PORT SCHED_PORT KWOK_PORT <<< "$(free_ports 6)"
  [[ -n "$KWOK_PORT" ]] || die "could not find 6 free loopback ports"
  cat > "$PORTS_FILE" <<EOF
ETCD_PORT=$ETCD_PORT
ETCD_PEER_PORT=$ETCD_PEER_PORT
API_PORT=$API_PORT
KCM_PORT=$KCM_PORT
SCHED_PORT=$SCHED_PORT
KWOK_PORT=$KWOK_PORT
EOF
  write_kubeconfig "$KUBECONFIG_PATH" admin embed
  write_kubeconfig "$STATE_DIR/kube-controller-manager.kubeconfig" kube-controller-manager
  write_kubeconfig "$STATE_DIR/kube-scheduler.kubeconfig" kube-scheduler
  write_kubeconfig "$STATE_DIR/kwok.kubeconfig" kwok

  # etcd ----------------------------------------------------------------------
  start etcd "$BIN_DIR/etcd" --name=default --data-dir="$STATE_DIR/etcd" \
    --listen-client-urls="http://127.0.0.1:$ETCD_PORT" --advertise-client-urls="http://127.0.0.1:$ETCD_PORT" \
    --listen-peer-urls="http://127.0.0.1:$ETCD_PEER_PORT" --initial-advertise-peer-urls="http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-cluster="default=http://127.0.0.1:$ETCD_PEER_PORT" \
    --quota-backend-bytes=8589934592 --snapshot-count=100000 --unsafe-no-fsync \
    --log-level=warn
  wait_for etcd 30 etcd_ok
  log "etcd ready on 127.0.0.1:$ETCD_PORT ($(elapsed "$t0")s)"

  # kube-apiserver --------------------------------------------------------------
  start kube-apiserver "$BIN_DIR/kube-apiserver" \
    --etcd-servers="http://127.0.0.1:$ETCD_PORT" \
    --bind-address="$bind_address" --advertise-address="$advertise_address" --secure-port="$API_PORT" \
    --tls-cert-file="$PKI/apiserver.crt" --tls-private-key-file="$PKI/apiserver.key" \
    --client-ca-file="$PKI/ca.crt" \
    --requestheader-client-ca-file="$PKI/front-proxy-ca.crt" --requestheader-allowed-names=front-proxy-client \
    --requestheader-username-headers=X-Remote-User --requestheader-group-headers=X-Remote-Group \
    --requestheader-extra-headers-prefix=X-Remote-Extra- \
    --proxy-client-cert-file="$PKI/front-proxy-client.crt" --proxy-client-key-file="$PKI/front-proxy-client.key" \
    --service-account-issuer="$SA_ISSUER" \
    --service-account-key-file="$PKI/sa.pub" --service-account-signing-key-file="$PKI/sa.key" \
    --authorization-mode=Node,RBAC \
    --enable-admission-plugins=NodeRestriction,PodSecurity \
    --service-cluster-ip-range="$SERVICE_CIDR" \
    --endpoint-reconciler-type="$reconciler" \
    --kubelet-client-certificate="$PKI/kube-apiserver-kubelet-client.crt" \
    --kubelet-client-key="$PKI/kube-apiserver-kubelet-client.key" \
    --kubelet-certificate-authority="$PKI/ca.crt" \
    --kubelet-preferred-address-types=InternalIP,Hostname \
    --allow-privileged=true \
    --enable-priority-and-fairness=false --max-requests-inflight=0 --max-mutating-requests-inflight=0 \
    --profiling=false --v=1 --cert-dir="$PKI/kube-apiserver"
  wait_for kube-apiserver 90 https_ok "$API_PORT" /readyz
  log "kube-apiserver ready on https://127.0.0.1:$API_PORT ($(elapsed "$t0")s)"

  # kube-controller-manager, kube-scheduler, kwok --------------------------------
  # KWOK renews every node's Lease; on two cores thousands of nodes lag behind, and an API
  # server down for a minute (the chaos suite restarts it) stops every renewal. With the
  # upstream 40 s lease and 50 s grace period the node lifecycle controller then marks every
  # node NotReady and every pod Ready=False, which KWOK never turns back. So the lease and
  # the grace period grow with the node count: 40 s / 180 s up to 1000 nodes, then 1 s of
  # lease per 25 nodes and a grace period of 4 leases (5000 nodes: 200 s / 800 s).
  local lease_s=40 grace_s=180
  if [[ -n "$nodes_n" ]] && (( nodes_n > 1000 )); then
    lease_s=$(( nodes_n / 25 )); grace_s=$(( 4 * lease_s ))
  fi
  start kube-controller-manager "$BIN_DIR/kube-controller-manager" \
    --kubeconfig="$STATE_DIR/kube-controller-manager.kubeconfig" \
    --authentication-kubeconfig="$STATE_DIR/kube-controller-manager.kubeconfig" \
    --authorization-kubeconfig="$STATE_DIR/kube-controller-manager.kubeconfig" \
    --bind-address=127.0.0.1 --secure-port="$KCM_PORT" --cert-dir="$PKI/kube-controller-manager" \
    --leader-elect=false \
    --use-service-account-credentials=true \
    --service-account-private-key-file="$PKI/sa.key" --root-ca-file="$PKI/ca.crt" \
    --cluster-signing-cert-file="$PKI/ca.crt" --cluster-signing-key-file="$PKI/ca.key" \
    --service-cluster-ip-range="$SERVICE_CIDR" \
    --kube-api-qps=200 --kube-api-burst=400 \
    --node-monitor-grace-period="${grace_s}s" \
    --profiling=false --v=1
  cat > "$STATE_DIR/kube-scheduler.yaml" <<EOF
apiVersion: kubescheduler.config.k8s.io/v1
kind: KubeSchedulerConfiguration
clientConnection:
  kubeconfig: "$STATE_DIR/kube-scheduler.kubeconfig"
  qps: 200
  burst: 400
leaderElection:
  leaderElect: false
EOF
  if [[ -n "$sched_config" ]]; then  # its other top-level keys (extenders, profiles, ...)
    grep -Ev '^(apiVersion|kind):' "$sched_config" >> "$STATE_DIR/kube-scheduler.yaml" || true
    log "kube-scheduler configured from $sched_config"
  fi
  start kube-scheduler "$BIN_DIR/kube-scheduler" --config="$STATE_DIR/kube-scheduler.yaml" \
    --authentication-kubeconfig="$STATE_DIR/kube-scheduler.kubeconfig" \
    --authorization-kubeconfig="$STATE_DIR/kube-scheduler.kubeconfig" \
    --bind-address=127.0.0.1 --secure-port="$SCHED_PORT" --cert-dir="$PKI/kube-scheduler" \
    --profiling=false --v=1
  # HOME: kwok would also read ~/.kwok/kwok.yaml; keep it to this cluster's own.
  mkdir -p "$STATE_DIR/kwok-home"
  start kwok env HOME="$STATE_DIR/kwok-home" "$BIN_DIR/kwok" \
    --kubeconfig="$STATE_DIR/kwok.kubeconfig" \
    --manage-all-nodes=false --manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake \
    --cidr="$KWOK_POD_CIDR" --node-ip=10.0.0.1 --node-lease-duration-seconds="$lease_s" \
    --server-address="127.0.0.1:$KWOK_PORT"
  wait_for kube-controller-manager 60 https_ok "$KCM_PORT" /healthz
  wait_for kube-scheduler 60 https_ok "$SCHED_PORT" /healthz
  wait_for kwok 60 curl -sf --max-time 2 "http://127.0.0.1:$KWOK_PORT/healthz"
  log "kube-controller-manager, kube-scheduler and kwok healthy ($(elapsed "$t0")s)"

  # nodes -----------------------------------------------------------------------
  local nodes_json=$STATE_DIR/nodes.json count
  if ! kc create --dry-run=client -o json -f "$nodes_file" > "$STATE_DIR/nodes.in.json" 2> "$LOGS/nodes.log"; then
    cat "$LOGS/nodes.log" >&2; stop_all; die "cannot read $nodes_file"
  fi
  if [[ -n "$nodes_n" ]]; then
    python3 "$HACK_DIR/kwok-nodes.py" generate "$nodes_n" < "$STATE_DIR/nodes.in.json" > "$nodes_json"
  else
    python3 "$HACK_DIR/kwok-nodes.py" prepare < "$STATE_DIR/nodes.in.json" > "$nodes_json"
  fi || { stop_all; die "preparing the nodes from $nodes_file failed"; }
  count=$(python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))["items"]))' "$nodes_json")
  if ! kc create -f "$nodes_json" -o name >> "$LOGS/nodes.log" 2>&1; then
    tail -n 20 "$LOGS/nodes.log" >&2; fail kube-apiserver "creating the nodes failed"
  fi
  echo "$nodes_file ${nodes_n:-all} $real_file" > "$STATE_DIR/nodes.source"
  log "created $count KWOK nodes from ${nodes_file#"$PWD"/}${nodes_n:+ (generated $nodes_n)} ($(elapsed "$t0")s)"
  local ready=0
  t=$SECONDS
  while (( SECONDS - t < timeout )); do
    ready=$(kc get nodes --no-headers 2>/dev/null | awk '$2 ~ /^Ready/ { n++ } END { print n + 0 }')
    (( ready >= count )) && break
    alive kwok || fail kwok "kwok exited"
    sleep 0.5
  done
  (( ready >= count )) || fail kwok "only $ready of $count nodes Ready after ${timeout}s"
  # The default ServiceAccount shows that the controller manager works.
  wait_for kube-controller-manager 60 kc get serviceaccount default -n default
  if [[ "$real_file" != none ]]; then
    kc create --dry-run=client -o json -f "$real_file" > "$STATE_DIR/node/spec.in.json" 2>> "$LOGS/nodes.log" \
      || fail kube-apiserver "cannot read the real nodes file $real_file"
    real_name=$(python3 - "$STATE_DIR/node/spec.in.json" "$STATE_DIR/node/spec.json" <<'PYEOF'
import json, sys
doc = json.load(open(sys.argv[1]))
nodes = doc.get("items", [doc]) if doc.get("kind") in ("List", "NodeList") else [doc]
if len(nodes) != 1 or nodes[0].get("kind") != "Node":
    sys.exit(f"the real nodes file must hold exactly one Node (this machine), not {len(nodes)}")
json.dump(nodes[0], open(sys.argv[2], "w"))
print(nodes[0]["metadata"]["name"])
PYEOF
) || fail kube-apiserver "the real nodes file $real_file must hold exactly one Node"

    echo "$real_name" > "$REAL_NODE_FILE"
    COMPONENTS+=($(node_components))
    node_up "$real_name" "$STATE_DIR/node/spec.json"
  fi
  log "cluster up: $count KWOK nodes${real_name:+ and real node $real_name} Ready in $(elapsed "$t0")s"
  log "  export KUBECONFIG=$KUBECONFIG_PATH"
  echo "$KUBECONFIG_PATH"
}

cmd_down() {
  if has_real_node || [[ -d "$NODE_DIR" ]]; then node_down; fi
  if any_alive; then
    stop_all
    [[ -n "$(stray_pids)" ]] && die "processes still running: $(stray_pids | tr '\n' ' ')"
    log "cluster stopped"
  else
    log "cluster not running"
  fi
  clean_state logs
}

cmd_status() {
  local c pid ok=0
  # shellcheck source=/dev/null
  [[ -f "$PORTS_FILE" ]] && source "$PORTS_FILE"
  declare -A port=([etcd]=${ETCD_PORT:-} [kube-apiserver]=${API_PORT:-} [kube-controller-manager]=${KCM_PORT:-}
                   [kube-scheduler]=${SCHED_PORT:-} [kwok]=${KWOK_PORT:-}
                   [containerd]=- [kubelet]=${KUBELET_PORT:-} [kube-proxy]=${KUBE_PROXY_HEALTHZ_PORT:-})
  printf '%-24s %-8s %-8s %s\n' COMPONENT STATE PID PORT
  for c in "${COMPONENTS[@]}"; do
    if pid=$(pid_of "$c"); then printf '%-24s %-8s %-8s %s\n' "$c" running "$pid" "${port[$c]}"
    else printf '%-24s %-8s %-8s %s\n' "$c" stopped - -; ok=1; fi
  done
  if (( ok == 0 )) && https_ok "$API_PORT" /readyz; then
    local total ready
    total=$(kc get nodes --no-headers 2>/dev/null | wc -l)
    ready=$(kc get nodes --no-headers 2>/dev/null | awk '$2 ~ /^Ready/ { n++ } END { print n + 0 }')
    echo "server:     https://127.0.0.1:$API_PORT ($KUBE_VERSION)"
    echo "nodes:      $ready/$total Ready"
    if has_real_node; then
      local name
      name=$(cat "$REAL_NODE_FILE")
      kc get node "$name" --no-headers -o custom-columns='NAME:.metadata.name,READY:.status.conditions[?(@.type=="Ready")].status,IP:.status.addresses[?(@.type=="InternalIP")].address,GPUS:.status.allocatable.nvidia\.com/gpu,REGION:.metadata.labels.topology\.kubernetes\.io/region,PRODUCT:.metadata.labels.nvidia\.com/gpu\.product' 2>/dev/null \
        | while read -r n r ipaddr g reg prod; do
            printf 'real node:  %s Ready=%s %s pods=%s nvidia.com/gpu=%s region=%s product=%s\n' "$n" "$r" "$ipaddr" \
              "$(kc get pods -A --field-selector spec.nodeName="$n" --no-headers 2>/dev/null | wc -l)" "$g" "$reg" "$prod"
          done
      echo "containerd: $NODE_RUN/containerd.sock (ctr --address ... -n k8s.io)"
    else
      echo "real node:  none (KWOK only)"
    fi
    echo "kubeconfig: $KUBECONFIG_PATH"
    echo "logs:       $LOGS"
    return 0
  fi
  echo "cluster is not up (state: $STATE_DIR)"
  return 1
}

cmd_load() {
  (( $# )) || die "load: name the images (hack/build-images.sh --help)"
  has_real_node && alive containerd || die "no real node is up (hack/cluster.sh up)"
  # shellcheck source=/dev/null
  source "$PORTS_FILE"
  node_load_images "$@"
}

health() {  # health COMPONENT: succeeds when it answers its health check
  case "$1" in
    etcd) etcd_ok ;;
    kube-apiserver) https_ok "$API_PORT" /readyz ;;
    kube-controller-manager) https_ok "$KCM_PORT" /healthz ;;
    kube-scheduler) https_ok "$SCHED_PORT" /healthz ;;
    kwok) curl -sf --max-time 2 "http://127.0.0.1:$KWOK_PORT/healthz" ;;
  esac
}

cmd_restart() {
  local name=${1:-} sig=TERM pid i args=()
  [[ "${2:-}" == --kill ]] && sig=KILL
  [[ " ${COMPONENTS[*]} " == *" $name "* ]] || die "restart: name one of: ${COMPONENTS[*]}"
  [[ -f "$PORTS_FILE" ]] || die "the cluster is not up (no $PORTS_FILE)"
  # shellcheck source=/dev/null
  source "$PORTS_FILE"
  pid=$(pid_of "$name") || die "$name is not running"
  mapfile -d '' -t args < "/proc/$pid/cmdline"
  [[ "$name" == kwok ]] && args=(env HOME="$STATE_DIR/kwok-home" "${args[@]}")
  kill "-$sig" "$pid" 2>/dev/null || true
  for (( i=0; i<150; i++ )); do [[ -d /proc/$pid ]] || break; sleep 0.1; done
  [[ -d /proc/$pid ]] && { kill -KILL "$pid" 2>/dev/null || true; sleep 0.2; }
  start "$name" "${args[@]}"
  wait_for "$name" 90 health "$name"
  log "$name restarted (SIG$sig)"
}

cmd_logs() {
  if [[ -n "${1:-}" ]]; then tail -n "${LINES:-50}" "$LOGS/$1.log"
  else ls -1 "$LOGS"/*.log 2>/dev/null; fi
}

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }

main() {
  local cmd=${1:-}; shift || true
  case "$cmd" in
    up|down|restart)
      exec 9> "$LOCK_FILE"
      flock -w 600 9 || die "another hack/cluster.sh holds $LOCK_FILE"
      "cmd_$cmd" "$@" ;;
    status) cmd_status "$@" ;;
    load) cmd_load "$@" ;;
    kubeconfig) echo "$KUBECONFIG_PATH" ;;
    logs) cmd_logs "$@" ;;
    -h|--help|help) usage ;;
    *) usage >&2; exit 2 ;;
  esac
}

main "$@"
