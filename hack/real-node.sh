# shellcheck shell=bash
# Real nodes of the local cluster, sourced by hack/cluster.sh (not run on its own).
#
# A real node is this machine: kubelet (built from the control plane's k8s.io/kubernetes
# version) on containerd + runc (Debian's packages), pods on a CNI bridge (gs-cni0, host-local
# IPAM), kube-proxy (iptables mode) for Services and CoreDNS (a pod behind the kube-dns Service,
# 10.96.0.10) for cluster DNS.  One real-node cluster per machine at a time (kube-proxy's
# iptables chains and the kubepods cgroups are the machine's): a second one waits for the first
# to go down (GREENSHARD_REAL_NODE_WAIT seconds, default 900).
#
# Where things live:
#   $STATE_DIR/node/                    configs, certificates, CNI config + IPAM
#   /var/lib/greenshard-node/kubelet    kubelet's root dir (pods' volumes), emptied at down
#   /run/greenshard-node/               containerd socket and state, runc state, pod netns files
#   /var/lib/greenshard-node/containerd containerd's root: images stay imported across clusters
#
# `down` stops kubelet, kube-proxy, every container (runc), containerd and its shims, deletes
# the pods' network namespaces, unmounts what they mounted, deletes gs-cni0, the routes, every
# KUBE-*/CNI-*/GREENSHARD-* iptables chain and the kubepods cgroups, and restores the sysctls
# that kubelet and the bridge changed.  tests/e2e/test_real_node.py counts all of it.

NODE_RUN=/run/greenshard-node
NODE_CACHE=${GREENSHARD_NODE_CACHE:-/var/lib/greenshard-node}
NODE_LOCK=/run/greenshard-node.lock
NODE_DIR=$STATE_DIR/node
# kubelet's root dir holds unix sockets (pod-resources, device plugins): a path short enough
# for them (108 bytes) whatever the state dir; one real node per machine, so one path.
NODE_KUBELET=$NODE_CACHE/kubelet
NODE_BRIDGE=gs-cni0
NODE_SUBNET=10.244.1.0/24
NODE_GATEWAY=10.244.1.1      # gs-cni0's address: the pods' gateway, and the API's address for them
KWOK_POD_CIDR=10.244.128.0/17  # KWOK's made-up pod IPs: never routed anywhere
DNS_IP=10.96.0.10
REAL_NODE_TAINT=greenshard.dev/real-node
# Sysctls set here or by kubelet (its kernel defaults): saved at up, restored at down.
NODE_SYSCTLS=(net.ipv4.ip_forward net.bridge.bridge-nf-call-iptables vm.overcommit_memory
              vm.panic_on_oom kernel.panic kernel.panic_on_oops kernel.keys.root_maxkeys
              kernel.keys.root_maxbytes)
CTR=(ctr --address "$NODE_RUN/containerd.sock" --namespace k8s.io)

node_components() { echo containerd kubelet kube-proxy; }

# --- host-wide ownership ------------------------------------------------------------------------
node_owner() { cat "$NODE_RUN/owner" 2>/dev/null || true; }

# The state dir that owns this machine's real node, if its processes still run.
node_live_owner() {
  local owner pid
  owner=$(node_owner)
  [[ -n "$owner" ]] || return 1
  for c in containerd kubelet; do
    pid=$(cat "$owner/pids/$c.pid" 2>/dev/null) || continue
    [[ -n "$pid" && -r /proc/$pid/cmdline ]] && tr '\0' ' ' < "/proc/$pid/cmdline" | grep -qF -- "$owner" \
      && { echo "$owner"; return 0; }
  done
  return 1
}

node_claim() {  # take the machine's real node for this cluster, waiting for another to go down
  local wait=${GREENSHARD_REAL_NODE_WAIT:-900} t0=$SECONDS other
  while :; do
    {
      flock -w 60 8 || die "cannot lock $NODE_LOCK"
      if other=$(node_live_owner) && [[ "$other" != "$STATE_DIR" ]]; then
        :
      else
        if [[ -n "$(node_owner)" || -d "$NODE_RUN" ]]; then
          log "cleaning up what a previous real node left ($(node_owner || echo unknown))"
          node_cleanup
        fi
        mkdir -p "$NODE_RUN"
        echo "$STATE_DIR" > "$NODE_RUN/owner"
        return 0
      fi
    } 8> "$NODE_LOCK"
    (( SECONDS - t0 < wait )) || die "the real node of this machine belongs to $other (hack/cluster.sh down there); waited ${wait}s"
    log "the real node of this machine belongs to $other: waiting (up to ${wait}s)"
    sleep 5
  done
}

# --- preparation --------------------------------------------------------------------------------
node_check_prereqs() {
  (( EUID == 0 )) || die "real nodes need root (containerd, kubelet, iptables): run as root, or pass --real-nodes-file none"
  bash "$HACK_DIR/install-node-deps.sh" || die "installing the real node's packages failed"
  local b missing=()
  for b in kubelet kube-proxy pause coredns; do [[ -x "$BIN_DIR/$b" ]] || missing+=("$b"); done
  (( ${#missing[@]} == 0 )) || die "missing in $BIN_DIR: ${missing[*]}; run hack/build-tools.sh"
  bash "$HACK_DIR/build-images.sh" pause coredns || die "building the pause and coredns images failed"
}

node_ip() { ip -4 route get 1.1.1.1 2>/dev/null | sed -n 's/.* src \([0-9.]*\).*/\1/p' | head -1; }

# Before kube-apiserver starts: the bridge whose address the API is advertised on.
node_prepare_network() {
  local s
  : > "$NODE_DIR/sysctl.saved"
  for s in "${NODE_SYSCTLS[@]}"; do
    echo "$s=$(sysctl -n "$s" 2>/dev/null)" >> "$NODE_DIR/sysctl.saved"
  done
  sysctl -qw net.ipv4.ip_forward=1 net.bridge.bridge-nf-call-iptables=1 >/dev/null
  ip link add "$NODE_BRIDGE" type bridge
  ip addr add "$NODE_GATEWAY/24" dev "$NODE_BRIDGE"
  ip link set "$NODE_BRIDGE" up
  # Nothing of the cluster's address ranges leaves this machine: KWOK's pod IPs are
  # unreachable, and Service IPs without a rule go to the bridge, where nothing answers.
  ip route add unreachable 10.244.0.0/16
  ip route add "$SERVICE_CIDR" dev "$NODE_BRIDGE"
  # Pods reach each other, Services and this machine, never another network.
  iptables -w -N GREENSHARD-NODE
  iptables -w -A GREENSHARD-NODE -s 10.244.0.0/16 -d 10.244.0.0/16 -j ACCEPT
  iptables -w -A GREENSHARD-NODE -s 10.244.0.0/16 -j REJECT --reject-with icmp-net-prohibited
  iptables -w -I FORWARD 1 -j GREENSHARD-NODE
}

node_certs() {  # after gen_pki: the kubelet's and kube-proxy's identities
  local name=$1 ip=$2
  (
    cd "$PKI"
    openssl_q() { openssl "$@" 2>/dev/null; }
    newkey() { openssl_q genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1"; }
    cert() {
      newkey "$1.key"
      openssl_q req -new -key "$1.key" -subj "$2" -out "$1.csr"
      printf '%b' "$3" > "$1.ext"
      openssl_q x509 -req -in "$1.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -days 3650 \
        -extfile "$1.ext" -out "$1.crt"
      rm -f "$1.csr" "$1.ext"
    }
    local client='keyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n'
    cert "kubelet-$name" "/O=system:nodes/CN=system:node:$name" "$client"
    cert "kubelet-$name-serving" "/O=system:nodes/CN=system:node:$name" \
      "keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\nsubjectAltName=IP:$ip,DNS:$name\n"
    cert kube-proxy "/CN=system:kube-proxy" "$client"
    chmod 600 ./*.key
  ) || die "generating the real node's certificates failed"
  write_kubeconfig "$NODE_DIR/kubelet.kubeconfig" "kubelet-$name"
  write_kubeconfig "$NODE_DIR/kube-proxy.kubeconfig" kube-proxy
}

# --- containerd ---------------------------------------------------------------------------------
node_start_containerd() {
  mkdir -p "$NODE_RUN" "$NODE_CACHE/containerd" "$NODE_DIR/cni/net.d" "$NODE_DIR/cni/ipam"
  local pause_ref
  pause_ref=$(bash "$HACK_DIR/build-images.sh" --print-ref pause | awk '{ print $2 }')
  cat > "$NODE_DIR/containerd.toml" <<EOF
# containerd of the real node (hack/real-node.sh); state: $STATE_DIR
version = 2
root = "$NODE_CACHE/containerd"
state = "$NODE_RUN/containerd"
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs",
                    "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs",
                    "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]
[grpc]
  address = "$NODE_RUN/containerd.sock"
[ttrpc]
  address = "$NODE_RUN/containerd.sock.ttrpc"
[plugins."io.containerd.internal.v1.opt"]
  path = "$NODE_CACHE/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$pause_ref"
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  netns_mounts_under_state_dir = true
  # This machine withholds CAP_SYS_RESOURCE even from root: no process may lower its OOM score
  # (kubelet asks -998 for pod sandboxes), so keep every container's at containerd's or above.
  restrict_oom_score_adj = true
  enable_selinux = false
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        BinaryName = "/usr/sbin/runc"
        Root = "$NODE_RUN/runc"
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$NODE_DIR/cni/net.d"
EOF
  cat > "$NODE_DIR/cni/net.d/10-greenshard.conflist" <<EOF
{
  "cniVersion": "1.0.0",
  "name": "greenshard",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "$NODE_BRIDGE",
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "ranges": [[{"subnet": "$NODE_SUBNET", "gateway": "$NODE_GATEWAY"}]],
        "routes": [{"dst": "0.0.0.0/0"}],
        "dataDir": "$NODE_DIR/cni/ipam"
      }
    }
  ]
}
EOF
  start containerd /usr/bin/containerd --config "$NODE_DIR/containerd.toml" --log-level warn
  wait_for containerd 60 "${CTR[@]}" version
}

# Imports the named images' archives (hack/build-images.sh) unless this containerd has them
# at the same build already.
node_load_images() {
  local name ref archive stamp have
  mkdir -p "$NODE_CACHE/imported"
  for name in "$@"; do
    read -r _ ref archive < <(bash "$HACK_DIR/build-images.sh" --print-ref "$name")
    [[ -s "$archive" ]] || die "no image archive $archive: run hack/build-images.sh $name"
    stamp=$(cat "${archive%.tar}.stamp" 2>/dev/null || echo none)
    have=$(cat "$NODE_CACHE/imported/$name" 2>/dev/null || true)
    if [[ "$have" == "$stamp" ]] && "${CTR[@]}" images ls -q "name==$ref" | grep -q .; then
      continue
    fi
    local t0
    t0=$(now)
    "${CTR[@]}" images import "$archive" >> "$LOGS/images.log" 2>&1 \
      || { tail -5 "$LOGS/images.log" >&2; die "importing $archive into containerd failed"; }
    echo "$stamp" > "$NODE_CACHE/imported/$name"
    log "image $ref imported into the real node ($(elapsed "$t0")s)"
  done
}

# --- kubelet, kube-proxy, CoreDNS ---------------------------------------------------------------
node_start_kubelet() {
  local name=$1 ip=$2 port=$3 healthz=$4 taint=$5
  rm -rf "$NODE_KUBELET"; mkdir -p "$NODE_KUBELET"
  : > "$NODE_DIR/resolv.conf"
  cat > "$NODE_DIR/kubelet.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: "$ip"
port: $port
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: $healthz
tlsCertFile: "$PKI/kubelet-$name-serving.crt"
tlsPrivateKeyFile: "$PKI/kubelet-$name-serving.key"
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: "$PKI/ca.crt"}
authorization: {mode: Webhook}
containerRuntimeEndpoint: "unix://$NODE_RUN/containerd.sock"
# This machine runs cgroup v1 (hybrid) without systemd as init.
cgroupDriver: cgroupfs
failCgroupV1: false
failSwapOn: false
clusterDomain: cluster.local
clusterDNS: ["$DNS_IP"]
resolvConf: "$NODE_DIR/resolv.conf"
registerWithTaints:
$( [[ "$taint" == yes ]] && printf '  - {key: %s, value: "true", effect: NoSchedule}\n' "$REAL_NODE_TAINT" || echo "  []")
# A test machine: no eviction or image garbage collection because its disk is fuller than a
# production node's would be.
evictionHard: {memory.available: "100Mi", nodefs.available: "1%", imagefs.available: "1%", nodefs.inodesFree: "1%"}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
serializeImagePulls: false
maxPods: 110
podPidsLimit: 4096
nodeStatusReportFrequency: 10s
syncFrequency: 10s
fileCheckFrequency: 10s
staticPodPath: ""
shutdownGracePeriod: 0s
EOF
  start kubelet "$BIN_DIR/kubelet" --config="$NODE_DIR/kubelet.yaml" \
    --kubeconfig="$NODE_DIR/kubelet.kubeconfig" --root-dir="$NODE_KUBELET" \
    --cert-dir="$NODE_DIR/kubelet-pki" --hostname-override="$name" --node-ip="$ip" --v=1
  wait_for kubelet 60 curl -sf --max-time 2 "http://127.0.0.1:$healthz/healthz"
}

node_start_kube_proxy() {
  local name=$1 metrics=$2 healthz=$3
  cat > "$NODE_DIR/kube-proxy.yaml" <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection: {kubeconfig: "$NODE_DIR/kube-proxy.kubeconfig"}
hostnameOverride: "$name"
mode: iptables
clusterCIDR: 10.244.0.0/16
bindAddress: 127.0.0.1
healthzBindAddress: "127.0.0.1:$healthz"
metricsBindAddress: "127.0.0.1:$metrics"
iptables: {localhostNodePorts: false, syncPeriod: 10s, minSyncPeriod: 0s}
# Leave the machine's conntrack settings as they are.
conntrack: {maxPerCore: 0, min: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s,
            udpTimeout: 0s, udpStreamTimeout: 0s}
EOF
  start kube-proxy "$BIN_DIR/kube-proxy" --config="$NODE_DIR/kube-proxy.yaml" --v=1
  wait_for kube-proxy 60 curl -sf --max-time 2 "http://127.0.0.1:$healthz/healthz"
}

node_apply_spec() {  # labels, taints and extended resources of the nodes file's entry
  local name=$1 spec=$2
  python3 - "$spec" "$name" > "$NODE_DIR/node-spec.env" <<'EOF'
import json, shlex, sys
node = json.load(open(sys.argv[1]))
labels = node.get("metadata", {}).get("labels", {}) or {}
taints = node.get("spec", {}).get("taints", []) or []
cap = node.get("status", {}).get("capacity", {}) or {}
ext = {k: v for k, v in cap.items() if "/" in k}  # extended resources (nvidia.com/gpu)
print("LABELS=" + shlex.quote(" ".join(f"{k}={v}" for k, v in labels.items())))
print("TAINTS=" + shlex.quote(" ".join(
    f"{t['key']}={t.get('value', '')}:{t['effect']}" for t in taints)))
print("EXTENDED=" + shlex.quote(json.dumps(ext)))
EOF
  # shellcheck source=/dev/null
  source "$NODE_DIR/node-spec.env"
  # shellcheck disable=SC2086
  [[ -z "$LABELS" ]] || kc label node "$name" --overwrite $LABELS >> "$LOGS/nodes.log"
  # shellcheck disable=SC2086
  [[ -z "$TAINTS" ]] || kc taint node "$name" --overwrite $TAINTS >> "$LOGS/nodes.log"
  if [[ "$EXTENDED" != "{}" ]]; then
    # Extended resources (a stand-in for the NVIDIA device plugin): node status capacity; the
    # scheduler then counts them like real GPUs.
    local patch
    patch=$(python3 -c 'import json,sys; e=json.loads(sys.argv[1]); print(json.dumps([{"op":"add","path":"/status/capacity/"+k.replace("/","~1"),"value":str(v)} for k,v in e.items()]))' "$EXTENDED")
    kc patch node "$name" --subresource=status --type=json -p "$patch" >> "$LOGS/nodes.log"
    # kubelet derives allocatable from capacity at its next status update.
    local t=$SECONDS want have
    want=$(python3 -c 'import json,sys; print(json.dumps({k: str(v) for k, v in json.loads(sys.argv[1]).items()}, sort_keys=True))' "$EXTENDED")
    until have=$(kc get node "$name" -o json | python3 -c 'import json,sys; a=json.load(sys.stdin)["status"].get("allocatable", {}); w=json.loads(sys.argv[1]); print(json.dumps({k: a.get(k) for k in w}, sort_keys=True))' "$want") \
          && [[ "$have" == "$want" ]]; do
      (( SECONDS - t < 60 )) || fail kubelet "node $name: allocatable $have, not $want, after 60s"
      sleep 0.5
    done
  fi
}

node_start_coredns() {
  local coredns_ref
  coredns_ref=$(bash "$HACK_DIR/build-images.sh" --print-ref coredns | awk '{ print $2 }')
  sed -e "s|@COREDNS_IMAGE@|$coredns_ref|; s|@DNS_IP@|$DNS_IP|; s|@TAINT@|$REAL_NODE_TAINT|" \
    "$HACK_DIR/manifests/coredns.yaml" > "$NODE_DIR/coredns.yaml"
  kc apply -f "$NODE_DIR/coredns.yaml" >> "$LOGS/nodes.log" 2>&1 || fail kube-apiserver "applying CoreDNS failed"
  local t0=$SECONDS
  until [[ "$(kc -n kube-system get deploy coredns -o jsonpath='{.status.readyReplicas}' 2>/dev/null)" == 1 ]]; do
    alive kubelet || fail kubelet "kubelet exited"
    (( SECONDS - t0 < 120 )) || { kc -n kube-system describe pods -l k8s-app=kube-dns >&2 || true; fail kubelet "CoreDNS not Ready after 120s"; }
    sleep 0.5
  done
}

# node_up NAME SPEC_JSON: everything after the control plane is up.
node_up() {
  local name=$1 spec=$2 t0 ip ports taint=no
  t0=$(now)
  ip=$(cat "$NODE_DIR/node-ip")
  read -r KUBELET_PORT KUBELET_HEALTHZ PROXY_METRICS PROXY_HEALTHZ <<< "$(free_ports 4)"
  cat >> "$PORTS_FILE" <<EOF
KUBELET_PORT=$KUBELET_PORT
KUBELET_HEALTHZ_PORT=$KUBELET_HEALTHZ
KUBE_PROXY_HEALTHZ_PORT=$PROXY_HEALTHZ
EOF
  python3 -c 'import json,sys; n=json.load(open(sys.argv[1])); sys.exit(0 if any(t.get("key")==sys.argv[2] for t in n.get("spec",{}).get("taints",[]) or []) else 1)' \
    "$spec" "$REAL_NODE_TAINT" && taint=yes
  node_certs "$name" "$ip"
  node_start_containerd
  node_load_images pause coredns
  log "containerd ready ($(elapsed "$t0")s)"
  node_start_kubelet "$name" "$ip" "$KUBELET_PORT" "$KUBELET_HEALTHZ" "$taint"
  local t=$SECONDS
  until kc get node "$name" >/dev/null 2>&1; do
    alive kubelet || fail kubelet "kubelet exited"
    (( SECONDS - t < 60 )) || fail kubelet "node $name not registered after 60s"
    sleep 0.3
  done
  node_apply_spec "$name" "$spec"
  node_start_kube_proxy "$name" "$PROXY_METRICS" "$PROXY_HEALTHZ"
  kc wait --for=condition=Ready "node/$name" --timeout=120s >/dev/null || fail kubelet "node $name not Ready"
  node_start_coredns
  log "real node $name Ready with kube-proxy and CoreDNS ($(elapsed "$t0")s)"
}

# --- teardown -----------------------------------------------------------------------------------
node_kill_cgroup_procs() {
  local d pids
  for d in /sys/fs/cgroup/*/kubepods; do
    [[ -d "$d" ]] || continue
    pids=$(find "$d" -name cgroup.procs -exec cat {} + 2>/dev/null | sort -u)
    [[ -n "$pids" ]] && kill -KILL $pids 2>/dev/null
  done
  return 0
}

node_umount_under() {  # unmount every mount point under the given prefixes, deepest first
  local m prefix try
  for (( try=0; try<3; try++ )); do
    local points=()
    while IFS= read -r m; do
      for prefix in "$@"; do [[ "$m" == "$prefix"/* || "$m" == "$prefix" ]] && points+=("$m"); done
    done < <(awk '{ print $5 }' /proc/self/mountinfo)
    (( ${#points[@]} )) || return 0
    while IFS= read -r m; do
      umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
    done < <(printf '%s\n' "${points[@]}" | awk '{ print length, $0 }' | sort -rn | cut -d' ' -f2-)
  done
}

node_iptables_sweep() {  # every rule and chain named KUBE-*, CNI-* or GREENSHARD-*, all tables
  local table chain rule
  for table in filter nat mangle raw; do
    iptables -w -t "$table" -S 2>/dev/null | grep -E -- '-j (KUBE|CNI|GREENSHARD)-' | grep -E '^-A (INPUT|OUTPUT|FORWARD|PREROUTING|POSTROUTING) ' \
      | while IFS= read -r rule; do
          # shellcheck disable=SC2086
          iptables -w -t "$table" ${rule/-A/-D} 2>/dev/null || true
        done
    for chain in $(iptables -w -t "$table" -S 2>/dev/null | awk '$1 == "-N" && $2 ~ /^(KUBE|CNI|GREENSHARD)-/ { print $2 }'); do
      iptables -w -t "$table" -F "$chain" 2>/dev/null || true
    done
    for chain in $(iptables -w -t "$table" -S 2>/dev/null | awk '$1 == "-N" && $2 ~ /^(KUBE|CNI|GREENSHARD)-/ { print $2 }'); do
      iptables -w -t "$table" -X "$chain" 2>/dev/null || true
    done
  done
  # kube-proxy may also have left nftables tables (its nftables mode): none of ours stay.
  if command -v nft >/dev/null; then
    for t in "ip kube-proxy" "ip6 kube-proxy"; do nft delete table $t 2>/dev/null || true; done
  fi
}

# Brings the machine back to how it was before the real node, whatever is left of it: every
# step is tried whatever the one before did (no errexit).
node_cleanup() { ( set +e; _node_cleanup ); return 0; }
_node_cleanup() {
  local pid p
  # 1. kubelet and kube-proxy first (they would restart what follows).
  for p in kubelet kube-proxy; do
    if pid=$(pid_of "$p" 2>/dev/null); then kill -TERM "$pid" 2>/dev/null || true; fi
  done
  # 2. Every container: runc's own state, then whatever is left in the pods' cgroups.
  if [[ -d "$NODE_RUN/runc" ]]; then
    for c in $(runc --root "$NODE_RUN/runc" list -q 2>/dev/null); do
      runc --root "$NODE_RUN/runc" kill "$c" KILL 2>/dev/null || true
    done
    sleep 0.2
    for c in $(runc --root "$NODE_RUN/runc" list -q 2>/dev/null); do
      runc --root "$NODE_RUN/runc" delete --force "$c" 2>/dev/null || true
    done
  fi
  node_kill_cgroup_procs
  # 3. containerd and its shims (they outlive containerd by design).
  if pid=$(pid_of containerd 2>/dev/null); then kill -TERM "$pid" 2>/dev/null || true; fi
  local d
  for d in /proc/[0-9]*; do
    [[ "$(readlink "$d/exe" 2>/dev/null)" == */containerd-shim* ]] || continue
    tr '\0' ' ' < "$d/cmdline" 2>/dev/null | grep -qF -- "$NODE_RUN/" && kill -KILL "${d#/proc/}" 2>/dev/null
  done
  for (( i=0; i<50; i++ )); do
    local left=0
    for p in containerd kubelet kube-proxy; do alive "$p" 2>/dev/null && left=1; done
    (( left )) || break
    sleep 0.1
  done
  for p in containerd kubelet kube-proxy; do
    if pid=$(pid_of "$p" 2>/dev/null); then kill -KILL "$pid" 2>/dev/null || true; fi
    rm -f "$PIDS/$p.pid"
  done
  # 4. The pods' network namespaces (their veths go with them), then every mount left.
  if [[ -d "$NODE_RUN/containerd" ]]; then
    local ns
    for ns in $(find "$NODE_RUN/containerd" -path '*/netns/*' 2>/dev/null); do
      umount "$ns" 2>/dev/null || umount -l "$ns" 2>/dev/null || true
      rm -f "$ns"
    done
  fi
  node_umount_under "$NODE_RUN" "$NODE_DIR" "$NODE_KUBELET" "$NODE_CACHE/containerd"
  # 5. Network: bridge (with its routes), the unreachable route, iptables.
  ip link del "$NODE_BRIDGE" 2>/dev/null || true
  ip route del unreachable 10.244.0.0/16 2>/dev/null || true
  ip route del "$SERVICE_CIDR" 2>/dev/null || true
  if [[ -x "$BIN_DIR/kube-proxy" ]]; then "$BIN_DIR/kube-proxy" --cleanup >/dev/null 2>&1 || true; fi
  node_iptables_sweep
  # 6. The pods' cgroups, deepest first.
  for d in /sys/fs/cgroup/*/kubepods; do
    [[ -d "$d" ]] && find "$d" -depth -type d -exec rmdir {} + 2>/dev/null
  done
  # 7. Sysctls as they were.
  local saved=""
  for saved in "$NODE_DIR/sysctl.saved" "$(node_owner)/node/sysctl.saved"; do
    [[ -f "$saved" ]] && break
  done
  if [[ -f "$saved" ]]; then
    while IFS='=' read -r k v; do
      [[ -n "$k" && -n "$v" ]] && sysctl -qw "$k=$v" >/dev/null 2>&1
    done < "$saved"
  fi
  rm -rf "$NODE_RUN"
  if ! grep -qF " $NODE_KUBELET" /proc/self/mountinfo; then rm -rf "$NODE_KUBELET"; fi
  return 0
}

node_down() {
  [[ -d "$NODE_DIR" || "$(node_owner)" == "$STATE_DIR" ]] || return 0
  {
    flock -w 60 8 || die "cannot lock $NODE_LOCK"
    local owner
    owner=$(node_owner)
    if [[ -z "$owner" || "$owner" == "$STATE_DIR" ]]; then
      node_cleanup
    fi
  } 8> "$NODE_LOCK"
}
