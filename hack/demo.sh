#!/usr/bin/env bash
# `make demo`: on a fresh machine, build the control plane if missing, start it with KWOK nodes
# across 3 regions and 4 accelerator kinds, install the Helm chart into greenshard-system, run the
# operator locally as the chart's ServiceAccount (a bound token: the chart's RBAC is what is
# exercised), apply the sample GridProfile and InferenceDeployment, wait for Ready and show where
# it runs and what it emits. `make demo-down` (hack/demo.sh down) removes everything.
#
# There is no container runtime here, so the chart's own operator Deployment is installed with
# replicas=0 and the local process stands in for it.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
PY=${PY:-$ROOT/.venv/bin/python}
STATE=${GREENSHARD_DEMO_DIR:-$ROOT/hack/.state/demo}
export GREENSHARD_CLUSTER_DIR=${GREENSHARD_CLUSTER_DIR:-$STATE/cluster}
HELM="$ROOT/hack/bin/helm"
NS=greenshard-system
RELEASE=greenshard

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

down() {
  local pid i procs
  if [[ -f "$STATE/operator.pid" ]]; then
    pid=$(cat "$STATE/operator.pid")
    # ours only if it still names this demo's state (a pid can be recycled); its solver
    # process too: wait until both are gone (SIGKILL after 30 s) before saying "stopped"
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
  echo "demo: stopped the operator and the cluster"
}

if [[ "${1:-}" == "down" ]]; then down; exit 0; fi

mkdir -p "$STATE"
say "Tools (built once into hack/bin from Go modules)"
bash hack/build-tools.sh
say "Local control plane"
bash hack/cluster.sh up
export KUBECONFIG=$GREENSHARD_CLUSTER_DIR/kubeconfig
kubectl get nodes -L topology.kubernetes.io/region,nvidia.com/gpu.product,nvidia.com/gpu.count

say "CRDs (kubectl apply: Helm never upgrades CRDs) and the Helm chart"
kubectl apply -f crds/
kubectl wait --for=condition=Established crd --all --timeout=60s >/dev/null
"$HELM" upgrade --install "$RELEASE" charts/greenshard --namespace "$NS" --create-namespace \
  --set replicaCount=0 --set gridProfile.create=false --wait --timeout 2m

say "Operator, running locally as system:serviceaccount:$NS:$RELEASE"
server=$(kubectl config view --raw --minify -o jsonpath='{.clusters[0].cluster.server}')
ca=$(kubectl config view --raw --minify -o jsonpath='{.clusters[0].cluster.certificate-authority-data}')
token=$(kubectl -n "$NS" create token "$RELEASE" --duration=24h)
cat > "$STATE/operator.kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters: [{name: local, cluster: {server: "$server", certificate-authority-data: "$ca"}}]
users: [{name: greenshard, user: {token: "$token"}}]
contexts: [{name: greenshard, context: {cluster: local, user: greenshard}}]
current-context: greenshard
EOF
chmod 600 "$STATE/operator.kubeconfig"
if [[ -f "$STATE/operator.pid" ]] && kill -0 "$(cat "$STATE/operator.pid")" 2>/dev/null; then
  echo "operator already running (pid $(cat "$STATE/operator.pid"))"
else
  nohup "$PY" -m greenshard.cli run --kubeconfig "$STATE/operator.kubeconfig" \
    --liveness-port 0 --metrics-port 0 --log-format json > "$STATE/operator.log" 2>&1 &
  echo $! > "$STATE/operator.pid"
  echo "operator pid $(cat "$STATE/operator.pid"), log $STATE/operator.log"
fi

say "Sample GridProfile and InferenceDeployment"
kubectl apply -f crds/samples/gridprofile.yaml
kubectl apply -f crds/samples/llama-70b.yaml
if ! kubectl wait --for=condition=Ready infd/llama-70b --timeout=120s; then
  kubectl get infd llama-70b -o yaml | sed -n '/^status:/,$p'
  tail -20 "$STATE/operator.log"
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

echo
echo "Try: kubectl describe infd llama-70b | kubectl get events --field-selector involvedObject.kind=InferenceDeployment"
echo "Stop everything: make demo-down"
