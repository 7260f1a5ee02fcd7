#!/usr/bin/env bash
# `make demo`: on a fresh machine (as root), build the control plane and the real node's tools if
# missing, build the operator's image here (hack/build-images.sh: a Debian base from debootstrap,
# then the repository's Dockerfile), start the local cluster (KWOK nodes across 3 regions and 4
# accelerator kinds, plus this machine as a real node with kubelet, containerd, kube-proxy and
# CoreDNS), load the image into the real node, install the Helm chart into greenshard-system
# (Pod Security "restricted" enforced) with the operator and the scheduler extender running as
# pods on the real node, apply the sample GridProfile and InferenceDeployment, wait for Ready and
# show where it runs and what it emits.  `make demo-down` (hack/demo.sh down) removes everything.
#
# Env: GREENSHARD_DEMO_DIR (state, default hack/.state/demo), GREENSHARD_DEMO_EXTENDER=0 (no
# extender), GREENSHARD_CLUSTER_DIR.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
STATE=${GREENSHARD_DEMO_DIR:-$ROOT/hack/.state/demo}
export GREENSHARD_CLUSTER_DIR=${GREENSHARD_CLUSTER_DIR:-$STATE/cluster}
HELM="$ROOT/hack/bin/helm"
NS=greenshard-system
RELEASE=greenshard
EXTENDER=${GREENSHARD_DEMO_EXTENDER:-1}
# kube-scheduler runs on this machine, outside cluster DNS: it names the extender's Service by
# a fixed ClusterIP (in the cluster's 10.96.0.0/16).
EXTENDER_IP=10.96.0.20
EXTENDER_PORT=8888

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

down() {
  local pid i procs
  # An operator that an older demo ran as a local process (and its solver child): ours only if
  # it still names this demo's state; wait until both are gone (SIGKILL after 30 s).
  if [[ -f "$STATE/operator.pid" ]]; then
    pid=$(cat "$STATE/operator.pid")
    if tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$STATE"; then
      procs=$(echo "$pid" $(ps -o pid= --ppid "$pid" 2>/dev/null) | tr ' ' ',')
      kill -TERM "$pid" 2>/dev/null || true
      for (( i=0; i<300; i++ )); do
        ps -p "$procs" -o pid= >/dev/null 2>&1 || break
        sleep 0.1
      done
      if (( i == 300 )); then kill -KILL ${procs//,/ } 2>/dev/null || true; sleep 0.2; fi
    fi
    rm -f "$STATE/operator.pid"
  fi
  bash hack/cluster.sh down || true
  rm -rf "$STATE"
  echo "demo: stopped the cluster (operator and extender pods with it)"
}

if [[ "${1:-}" == "down" ]]; then down; exit 0; fi

mkdir -p "$STATE"
say "Tools (built once into hack/bin from Go modules)"
bash hack/build-tools.sh
say "Images (built here: Debian base by debootstrap, then the Dockerfile)"
bash hack/build-images.sh greenshard
IMAGE=$(bash hack/build-images.sh --print-ref greenshard | awk '{ print $2 }')

say "Local cluster: KWOK nodes and this machine as a real node"
up_args=()
if [[ "$EXTENDER" == 1 ]]; then
  sed -e "s|urlPrefix: \"http://127.0.0.1:8888\"|urlPrefix: \"http://$EXTENDER_IP:$EXTENDER_PORT\"|" \
    hack/scheduler-config.yaml > "$STATE/scheduler-config.yaml"
  grep -q "$EXTENDER_IP" "$STATE/scheduler-config.yaml"
  up_args+=(--scheduler-config "$STATE/scheduler-config.yaml")
fi
bash hack/cluster.sh up "${up_args[@]}"
export KUBECONFIG=$GREENSHARD_CLUSTER_DIR/kubeconfig
bash hack/cluster.sh load greenshard
kubectl get nodes -L greenshard.dev/real-node,topology.kubernetes.io/region,nvidia.com/gpu.product,nvidia.com/gpu.count

say "CRDs (kubectl apply: Helm never upgrades CRDs) and the Helm chart"
kubectl apply -f crds/
kubectl wait --for=condition=Established crd --all --timeout=60s >/dev/null
kubectl create namespace "$NS" --dry-run=client -o yaml | kubectl apply -f -
kubectl label namespace "$NS" --overwrite pod-security.kubernetes.io/enforce=restricted \
  pod-security.kubernetes.io/warn=restricted >/dev/null
chart_args=(
  --set gridProfile.create=false
  --set "image.repository=${IMAGE%:*}" --set "image.tag=${IMAGE##*:}" --set image.pullPolicy=Never
  # On the real node: it is tainted so that only pods that mean to run go there.
  --set-string 'nodeSelector.greenshard\.dev/real-node=true'
  --set 'tolerations[0].key=greenshard.dev/real-node' --set 'tolerations[0].operator=Exists'
  --set 'tolerations[0].effect=NoSchedule'
)
if [[ "$EXTENDER" == 1 ]]; then
  chart_args+=(--set extender.enabled=true --set "extender.port=$EXTENDER_PORT"
               --set "extender.service.clusterIP=$EXTENDER_IP")
fi
t0=$(now)
"$HELM" upgrade --install "$RELEASE" charts/greenshard --namespace "$NS" "${chart_args[@]}" \
  --wait --timeout 5m
ready_s=$(since "$t0")

say "The operator, running as a pod"
pod=$(kubectl -n "$NS" get pods -l app.kubernetes.io/component=operator -o jsonpath='{.items[0].metadata.name}')
kubectl -n "$NS" get pods -o wide
kubectl -n "$NS" get pod "$pod" -o jsonpath='operator pod {.metadata.name} on {.spec.nodeName}: {.status.phase}, ServiceAccount {.spec.serviceAccountName}, image {.spec.containers[0].image}{"\n"}'
echo "operator pod Ready ${ready_s}s after helm install (image pulled from nowhere: loaded into containerd)"
if [[ "$EXTENDER" == 1 ]]; then
  kubectl -n "$NS" get svc -l app.kubernetes.io/component=scheduler-extender
fi

say "Sample GridProfile and InferenceDeployment"
kubectl apply -f crds/samples/gridprofile.yaml
kubectl apply -f crds/samples/llama-70b.yaml
if ! kubectl wait --for=condition=Ready infd/llama-70b --timeout=180s; then
  kubectl get infd llama-70b -o yaml | sed -n '/^status:/,$p'
  kubectl -n "$NS" logs "$pod" --tail=30 || true
  exit 1
fi

say "kubectl get infd -o wide"
kubectl get infd -o wide
say "Placement per shard (status.placement)"
kubectl get infd llama-70b -o jsonpath='{range .status.placement[*]}{.shard}{"\t"}{.layers[0]}-{.layers[1]}{"\t"}{.pool}{"\t"}{.gramsPerHour}{" gCO2e/h\n"}{end}' \
  | column -t -N SHARD,LAYERS,POOL,EMISSIONS
kubectl get infd llama-70b -o jsonpath='total {.status.emissions.gramsPerHour} gCO2e/h vs {.status.emissions.baselineGramsPerHour} carbon-unaware ({.status.emissions.savingsPercent}% saved) at UTC hour {.status.emissions.hour}; solver {.status.solver.method}, gap {.status.solver.gap}{"\n"}'
say "Pods and the nodes kube-scheduler bound them to"
kubectl get pods -l greenshard.io/deployment=llama-70b \
  -o custom-columns=POD:.metadata.name,SHARD:.metadata.labels.greenshard\\.io/shard,NODE:.spec.nodeName,PHASE:.status.phase
if [[ "$EXTENDER" == 1 ]]; then
  say "The scheduler extender, called by kube-scheduler through its Service"
  # /metrics through the Service's ClusterIP, as kube-scheduler reaches it.
  curl -s --max-time 5 "http://$EXTENDER_IP:$EXTENDER_PORT/metrics" | grep -E '^greenshard_extender_requests_total' || true
fi

echo
echo "Point kubectl at the demo cluster (in your shell; this script's settings end with it):"
echo "  export KUBECONFIG=$KUBECONFIG"
echo "Then try: kubectl get infd -o wide; kubectl get gp; kubectl -n $NS logs deploy/$RELEASE"
echo "Stop everything: make demo-down"
