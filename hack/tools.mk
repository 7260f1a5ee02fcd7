# Local control plane targets, included from the top-level Makefile.
# Binaries go to hack/bin/, cluster state to hack/.state/cluster/
# (GREENSHARD_CLUSTER_DIR overrides it).  Versions: hack/versions.env.
#   make cluster-up CLUSTER_NODES=500               500 generated KWOK nodes
#   make cluster-up CLUSTER_NODES_FILE=nodes.yaml   nodes from a NodeList YAML
#   make cluster-up REAL_NODES_FILE=none            KWOK nodes only (no root needed)

CLUSTER_NODES_FILE ?=
CLUSTER_NODES ?=
# A NodeList of the real node (default hack/real-nodes.yaml), or "none" for KWOK only.
REAL_NODES_FILE ?=
CLUSTER_UP_ARGS = $(if $(CLUSTER_NODES_FILE),--nodes-file $(CLUSTER_NODES_FILE)) \
	$(if $(CLUSTER_NODES),--nodes $(CLUSTER_NODES)) \
	$(if $(REAL_NODES_FILE),--real-nodes-file $(REAL_NODES_FILE))

##@ Local cluster

.PHONY: tools cluster-up cluster-down cluster-status

tools: ## Build etcd, kube-apiserver/-controller-manager/-scheduler, kubelet, kube-proxy, CoreDNS, kwok, helm (once).
	bash hack/build-tools.sh

cluster-up: tools ## Start the local cluster: KWOK nodes (CLUSTER_NODES=N, CLUSTER_NODES_FILE=f) + this machine as a real node.
	bash hack/cluster.sh up $(CLUSTER_UP_ARGS)

cluster-down: ## Stop the local cluster; no process, mount, netns, link or iptables rule is left behind.
	bash hack/cluster.sh down

cluster-status: ## Show the local control plane's components, nodes and kubeconfig.
	@bash hack/cluster.sh status || true
