#!/usr/bin/env bash
# `make demo`: build the control plane if missing, start it with KWOK nodes across 3 regions and
# 4 accelerator kinds, read the real nodes back from the API server, and plan the example
# Llama-70B deployment against them at three hours of the day.
set -euo pipefail
cd "$(dirname "$0")/.."
GREENSHARD=${GREENSHARD:-.venv/bin/greenshard}

bash hack/build-tools.sh
bash hack/cluster.sh up
KUBECONFIG=$(bash hack/cluster.sh kubeconfig)
export KUBECONFIG
state=$(dirname "$KUBECONFIG")

echo
echo "== Nodes of the local cluster (KWOK) =="
kubectl get nodes -L topology.kubernetes.io/region,nvidia.com/gpu.product,nvidia.com/gpu.count
kubectl get nodes -o yaml > "$state/nodes.yaml"

for hour in 4 12 18; do
  echo
  echo "== greenshard plan at UTC hour $hour (crds/samples/llama-70b.yaml, crds/samples/gridprofile.yaml) =="
  "$GREENSHARD" plan -f crds/samples/llama-70b.yaml --nodes "$state/nodes.yaml" \
    --profile crds/samples/gridprofile.yaml --hour "$hour" --seed 1
done

echo
echo "The cluster is still up: KUBECONFIG=$KUBECONFIG kubectl get nodes"
echo "Stop it with: make cluster-down"
