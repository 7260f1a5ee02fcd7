#!/usr/bin/env python3
"""Prepares KWOK node objects for hack/cluster.sh (standard library only).

  kwok-nodes.py prepare    < nodes.json > list.json
  kwok-nodes.py generate N < nodes.json > list.json

Input is JSON: a List / NodeList or Node objects, one or more documents
(cluster.sh converts the YAML with `kubectl create --dry-run=client -o json`).

`prepare` keeps each node's name, labels, annotations, taints,
spec.unschedulable and status.allocatable / capacity / nodeInfo / addresses,
drops what the server, a kubelet or the node lifecycle controller owns (uid,
resourceVersion, conditions, node.kubernetes.io/* taints, ...) so that a
`kubectl get nodes -o yaml` dump of any cluster can be replayed, and adds the
annotation kwok.x-k8s.io/node: fake so that the KWOK controller manages it.

`generate N` makes N nodes by cycling through the input nodes as templates (so
through their regions and accelerators), named <template>-s<NNNN>.
"""

from __future__ import annotations

import copy
import json
import sys
from typing import Any

Obj = dict[str, Any]

KWOK_ANNOTATION = "kwok.x-k8s.io/node"
# Taints that the node lifecycle controller manages for a real kubelet.
DROP_TAINT_PREFIXES = ("node.kubernetes.io/", "node.cloudprovider.kubernetes.io/")
# Annotations that a real kubelet or a client of another cluster wrote.
DROP_ANNOTATION_PREFIXES = (
    "node.alpha.kubernetes.io/",
    "volumes.kubernetes.io/",
    "kubectl.kubernetes.io/last-applied",
)
DROP_METADATA = (
    "uid",
    "resourceVersion",
    "creationTimestamp",
    "managedFields",
    "generation",
    "selfLink",
    "ownerReferences",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "finalizers",
)
DROP_SPEC = ("podCIDR", "podCIDRs", "providerID", "configSource")
KEEP_STATUS = ("allocatable", "capacity", "nodeInfo", "addresses")


def read_docs(text: str) -> list[Obj]:
    """One or more JSON documents, concatenated (as `kubectl create -o json` prints)."""
    decoder, pos = json.JSONDecoder(), 0
    docs: list[Obj] = []
    while True:
        while pos < len(text) and text[pos].isspace():
            pos += 1
        if pos == len(text):
            return docs
        doc, pos = decoder.raw_decode(text, pos)
        docs.append(doc)


def items_of(doc: Obj) -> list[Obj]:
    if doc.get("kind", "").endswith("List") or "items" in doc:
        return [i for i in doc.get("items") or [] if i.get("kind", "Node") == "Node"]
    return [doc] if doc.get("kind") == "Node" else []


def prepare(node: Obj) -> Obj:
    node = copy.deepcopy(node)
    node["apiVersion"], node["kind"] = "v1", "Node"
    meta = node.setdefault("metadata", {})
    for key in DROP_METADATA:
        meta.pop(key, None)
    anns = {
        k: v
        for k, v in (meta.get("annotations") or {}).items()
        if not k.startswith(DROP_ANNOTATION_PREFIXES)
    }
    anns[KWOK_ANNOTATION] = "fake"
    meta["annotations"] = anns
    labels = meta.setdefault("labels", {})
    labels.setdefault("kubernetes.io/hostname", meta["name"])
    labels.setdefault("type", "kwok")
    spec = node.setdefault("spec", {})
    for key in DROP_SPEC:
        spec.pop(key, None)
    taints = [
        t
        for t in spec.pop("taints", None) or []
        if not t.get("key", "").startswith(DROP_TAINT_PREFIXES)
    ]
    if taints:
        spec["taints"] = taints
    status = node.get("status") or {}
    node["status"] = {k: status[k] for k in KEEP_STATUS if k in status}
    return node


def generate(templates: list[Obj], n: int) -> list[Obj]:
    width = max(4, len(str(n - 1)))
    out = []
    for i in range(n):
        node = copy.deepcopy(templates[i % len(templates)])
        name = f"{node['metadata']['name']}-s{i:0{width}d}"
        node["metadata"]["name"] = name
        node["metadata"]["labels"]["kubernetes.io/hostname"] = name
        out.append(node)
    return out


def main(argv: list[str]) -> None:
    if len(argv) < 2 or argv[1] not in ("prepare", "generate"):
        sys.exit(__doc__)
    nodes = [prepare(n) for doc in read_docs(sys.stdin.read()) for n in items_of(doc)]
    if not nodes:
        sys.exit("kwok-nodes.py: no Node objects in the input")
    names = [n["metadata"].get("name") for n in nodes]
    if not all(names) or len(set(names)) != len(names):
        sys.exit("kwok-nodes.py: every node needs a unique metadata.name")
    if argv[1] == "generate":
        nodes = generate(nodes, int(argv[2]))
    json.dump({"apiVersion": "v1", "kind": "List", "items": nodes}, sys.stdout, indent=1)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main(sys.argv)
