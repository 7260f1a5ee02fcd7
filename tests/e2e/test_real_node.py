"""The local cluster's real node: this machine with kubelet, containerd, kube-proxy and CoreDNS.

This module starts its own cluster (state dir ``$GREENSHARD_CLUSTER_DIR-real`` or
``hack/.state/cluster-real``): the default KWOK nodes plus a real node that carries GPU labels
and advertises ``nvidia.com/gpu: 4``. Pods of the pipeline-probe image (hack/images/probe) find
each other through cluster DNS and ClusterIP Services, a probe with an unreachable neighbour
fails, two pipelines of StatefulSet pods (issue 12's design, built by hand in
tests/e2e/pipeline_probe.py) reach leader and neighbours by their pod DNS names and take the
node's 4 GPUs (a fifth GPU pod stays Pending), and ``hack/cluster.sh down`` leaves the
machine as it found it: processes, mounts, network namespaces, links, routes, iptables rules,
cgroups and sysctls are counted before, during and after. Needs root (it installs containerd,
runc, CNI plugins, iptables, buildah).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import HACK, ROOT, Cluster
from operator_harness import running_operator
from pipeline_probe import GRID_PROFILE, PIPELINE, assert_pipeline_connected, statefulsets

NODE = "real-gpu-0"
REAL_NODES = f"""
apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: Node
  metadata:
    name: {NODE}
    labels:
      greenshard.dev/real-node: "true"
      topology.kubernetes.io/region: local-1
      nvidia.com/gpu.present: "true"
      nvidia.com/gpu.product: NVIDIA-L4
      nvidia.com/gpu.memory: "23034"
      nvidia.com/gpu.count: "4"
  spec:
    taints:
    - {{key: greenshard.dev/real-node, value: "true", effect: NoSchedule}}
  status:
    capacity:
      nvidia.com/gpu: "4"
"""
PROBE_PORT = 29500
SYSCTLS = (
    "net.ipv4.ip_forward",
    "net.bridge.bridge-nf-call-iptables",
    "vm.overcommit_memory",
    "kernel.panic",
    "kernel.panic_on_oops",
)
BUILTIN_CHAINS = {"INPUT", "FORWARD", "OUTPUT", "PREROUTING", "POSTROUTING"}
NODE_EXES = {
    "kubelet",
    "kube-proxy",
    "containerd",
    "containerd-shim-runc-v2",
    "pause",
    "coredns",
    "busybox",
}


def run(argv: list[str], **kw: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, check=False, timeout=120, **kw)


def machine_state(prefixes: tuple[str, ...]) -> dict[str, Any]:
    """What a real node adds to this machine, counted."""
    procs = 0
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            exe = os.path.basename(os.readlink(f"/proc/{pid}/exe"))
            cgroup = Path(f"/proc/{pid}/cgroup").read_text()
        except OSError:
            continue
        if exe in NODE_EXES or "kubepods" in cgroup:
            procs += 1
    # (buildah's own storage mounts come and go with image builds: not the node's)
    mountpoints = [
        point
        for line in Path("/proc/self/mountinfo").read_text().splitlines()
        if not (point := line.split()[4]).startswith("/var/lib/containers/")
    ]
    net_namespaces = set()
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            net_namespaces.add(os.readlink(f"/proc/{pid}/ns/net"))
        except OSError:
            continue
    iptables = "".join(
        run(["iptables-save", "-t", table]).stdout for table in ("filter", "nat", "mangle", "raw")
    )
    return {
        "node processes": procs,
        "mounts": len(mountpoints),
        "mounts of the node": sum(m.startswith(prefixes) for m in mountpoints),
        "nsfs mounts": Path("/proc/self/mountinfo").read_text().count(" nsfs "),
        "network namespaces": len(net_namespaces),
        "links": len(run(["ip", "-o", "link"]).stdout.splitlines()),
        "routes": len(run(["ip", "route"]).stdout.splitlines()),
        "iptables rules": sum(line.startswith("-A ") for line in iptables.splitlines()),
        # Chains of its own (iptables-nft leaves the built-in ones of a table once it is used).
        "iptables chains": sum(
            line.startswith(":") and line.split()[0][1:] not in BUILTIN_CHAINS
            for line in iptables.splitlines()
        ),
        "kubepods cgroups": sum(1 for c in Path("/sys/fs/cgroup").glob("*/kubepods") if c.is_dir()),
        "sysctls": {s: run(["sysctl", "-n", s]).stdout.strip() for s in SYSCTLS},
    }


class RealCluster(Cluster):
    state_dir: Path
    before: dict[str, Any]
    prefixes: tuple[str, ...]

    def sh(self, *args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
        env = dict(os.environ, GREENSHARD_CLUSTER_DIR=str(self.state_dir))
        return subprocess.run(
            ["bash", str(HACK / "cluster.sh"), *args],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            check=False,
            timeout=timeout,
        )


@pytest.fixture(scope="module")
def real(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealCluster]:
    base = os.environ.get("GREENSHARD_CLUSTER_DIR", str(HACK / ".state" / "cluster"))
    state_dir = Path(f"{base}-real")
    spec = tmp_path_factory.mktemp("real-node") / "real-nodes.yaml"
    spec.write_text(REAL_NODES)
    for argv in (
        ["bash", str(HACK / "build-tools.sh")],
        ["bash", str(HACK / "build-images.sh"), "probe", "pause", "coredns"],
    ):
        proc = subprocess.run(
            argv, cwd=ROOT, capture_output=True, text=True, timeout=3600, check=False
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
    prefixes = (str(state_dir), "/run/greenshard-node", "/var/lib/greenshard-node")
    before = machine_state(prefixes)
    env = dict(os.environ, GREENSHARD_CLUSTER_DIR=str(state_dir))
    up = subprocess.run(
        ["bash", str(HACK / "cluster.sh"), "up", "--real-nodes-file", str(spec)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    try:
        assert up.returncode == 0, up.stderr[-5000:]
        cluster = RealCluster(
            up.stdout.strip().splitlines()[-1],
            started=True,
            local=True,
            helm_home=tmp_path_factory.mktemp("helm-home-real"),
        )
        cluster.state_dir = state_dir
        cluster.before = before
        cluster.prefixes = prefixes
        load = cluster.sh("load", "probe")
        assert load.returncode == 0, load.stderr
        yield cluster
    finally:
        subprocess.run(
            ["bash", str(HACK / "cluster.sh"), "down"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            timeout=300,
            check=False,
        )


def test_status_lists_the_real_node_with_its_gpus(real: RealCluster) -> None:
    status = real.sh("status", timeout=60)
    assert status.returncode == 0, status.stderr
    for component in ("containerd", "kubelet", "kube-proxy"):
        assert re.search(rf"^{component}\s+running\s+\d+", status.stdout, re.M), status.stdout
    line = next(x for x in status.stdout.splitlines() if x.startswith("real node:"))
    assert f"{NODE} Ready=True" in line and "nvidia.com/gpu=4" in line, line
    assert "region=local-1 product=NVIDIA-L4" in line, line

    node = real.get_json("node", NODE)
    assert node["status"]["allocatable"]["nvidia.com/gpu"] == "4"
    assert node["status"]["nodeInfo"]["containerRuntimeVersion"].startswith("containerd://1.")
    assert node["status"]["nodeInfo"]["kubeletVersion"] == real.versions["KUBE_VERSION"]
    taints = {(t["key"], t["effect"]) for t in node["spec"].get("taints", [])}
    assert ("greenshard.dev/real-node", "NoSchedule") in taints
    # KWOK nodes stand beside it, Ready.
    kwok = [n for n in real.items("nodes") if n["metadata"]["name"] != NODE]
    assert len(kwok) >= 12
    dns = real.get_json("deployment", "coredns", namespace="kube-system")
    assert dns["status"].get("readyReplicas") == 1


def probe_manifests(namespace: str, stages: int, **override: str) -> str:
    """STAGES probe pods, each behind a ClusterIP Service stage-S, wired as one pipeline
    (OVERRIDE: variables set on every pod, e.g. GREENSHARD_PROBE_TIMEOUT="6")."""
    docs: list[dict[str, Any]] = []
    for s in range(stages):
        env = {
            "GREENSHARD_SHARD_INDEX": str(s),
            "GREENSHARD_SHARD_COUNT": str(stages),
            "GREENSHARD_PIPELINE_INDEX": "0",
            "GREENSHARD_PIPELINE_COUNT": "1",
            "GREENSHARD_LEADER_ADDRESS": f"stage-0.{namespace}.svc.cluster.local",
            "GREENSHARD_PREV_ADDRESS": f"stage-{s - 1}" if s > 0 else "",
            "GREENSHARD_NEXT_ADDRESS": f"stage-{s + 1}:{PROBE_PORT}" if s < stages - 1 else "",
            "GREENSHARD_PROBE_TIMEOUT": "120",
        } | override
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": f"stage-{s}", "labels": {"stage": str(s)}},
            "spec": {
                "restartPolicy": "Never",
                "nodeSelector": {"greenshard.dev/real-node": "true"},
                "tolerations": [{"key": "greenshard.dev/real-node", "operator": "Exists"}],
                "securityContext": {
                    "runAsNonRoot": True,
                    "seccompProfile": {"type": "RuntimeDefault"},
                },
                "containers": [
                    {
                        "name": "probe",
                        "image": "localhost/greenshard/pipeline-probe:0.1.0",
                        "imagePullPolicy": "Never",
                        "env": [{"name": k, "value": v} for k, v in env.items()],
                        "ports": [{"containerPort": PROBE_PORT}],
                        "readinessProbe": {
                            "exec": {"command": ["cat", "/tmp/pipeline-ok"]},
                            "periodSeconds": 1,
                        },
                        "securityContext": {
                            "allowPrivilegeEscalation": False,
                            "capabilities": {"drop": ["ALL"]},
                        },
                    }
                ],
            },
        }
        svc = {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": f"stage-{s}"},
            "spec": {
                "selector": {"stage": str(s)},
                "ports": [{"port": PROBE_PORT, "targetPort": PROBE_PORT}],
                "publishNotReadyAddresses": True,
            },
        }
        docs += [pod, svc]
    return "\n---\n".join(json.dumps(d) for d in docs)


def logs(cluster: Cluster, pod: str, namespace: str) -> str:
    return cluster.kubectl("logs", pod, namespace=namespace, check=False).stdout


def test_the_operator_wires_a_probe_pipeline_on_the_real_node(
    real: RealCluster, tmp_path: Path
) -> None:
    """Issue 14: the operator (not a hand-built manifest) places a small InferenceDeployment of
    probe pods, 2 stages x 2 pipeline replicas, on the real node's 4 GPUs; every stage resolves
    its leader and neighbours by the DNS names the operator gave them and connects."""
    ns = "real-infd"
    real.kubectl("apply", "-f", str(ROOT / "crds"))
    real.wait(
        lambda: real.kubectl("get", "infd", "-A", check=False).returncode == 0,
        timeout=60,
        what="the InferenceDeployment resource served",
    )
    real.kubectl("create", "namespace", ns)
    real.kubectl(
        "label", "namespace", ns, "pod-security.kubernetes.io/enforce=restricted", "--overwrite"
    )
    real.wait(
        lambda: real.kubectl("get", "sa", "default", namespace=ns, check=False).returncode == 0,
        what="default ServiceAccount",
    )
    real.apply_yaml(GRID_PROFILE)
    try:
        with running_operator(real.kubeconfig, tmp_path) as operator:
            real.apply_yaml(PIPELINE, namespace=ns)
            ready = real.kubectl(
                "wait",
                "--for=condition=Ready",
                "infd/pipe",
                "--timeout=240s",
                namespace=ns,
                timeout=270,
                check=False,
            )
            assert ready.returncode == 0, (
                real.kubectl("get", "infd,sts,pods", "-o", "wide", namespace=ns).stdout,
                operator.log_tail(),
            )
            names = assert_pipeline_connected(
                real, ns, "greenshard.io/deployment=pipe", stages=2, replicas=2, node=NODE
            )
            assert names == {(s, r): f"pipe-shard-{s}-{r}" for s in range(2) for r in range(2)}
            body = real.get_json("infd", "pipe", namespace=ns)
            assert [row["pool"] for row in body["status"]["placement"]] == [
                "local-1/NVIDIA-L4",
                "local-1/NVIDIA-L4",
            ]
    finally:
        # waited for: the hand-built StatefulSets below need the node's 4 GPUs back
        real.kubectl("delete", "namespace", ns, "--wait=true", "--timeout=120s", check=False)
        real.kubectl("delete", "gridprofile", "e2e-real-pipeline", "--ignore-not-found")


def test_probe_pipeline_reaches_every_neighbour_through_dns_and_services(
    real: RealCluster,
) -> None:
    ns = "real-probe"
    real.kubectl("create", "namespace", ns)
    real.kubectl(
        "label", "namespace", ns, "pod-security.kubernetes.io/enforce=restricted", "--overwrite"
    )
    real.wait(
        lambda: real.kubectl("get", "sa", "default", namespace=ns, check=False).returncode == 0,
        what="default ServiceAccount",
    )
    try:
        real.apply_yaml(probe_manifests(ns, 3), namespace=ns)
        real.wait(
            lambda: all("PIPELINE-PROBE OK" in logs(real, f"stage-{s}", ns) for s in range(3)),
            timeout=180,
            interval=1,
            what="every stage's PIPELINE-PROBE OK",
        )
        for s in range(3):
            out = logs(real, f"stage-{s}", ns)
            pod = real.get_json("pod", f"stage-{s}", namespace=ns)
            assert pod["spec"]["nodeName"] == NODE
            assert pod["status"]["podIP"].startswith("10.244.1."), pod["status"]
            assert re.search(
                r"probe: leader stage-0\.real-probe\.svc\.cluster\.local:29500 -> "
                r"10\.96\.\d+\.\d+ connected",
                out,
            ), out
            if s > 0:
                assert f"probe: prev stage-{s - 1}:29500 -> 10.96." in out, out
            if s < 2:
                assert f"probe: next stage-{s + 1}:29500 -> 10.96." in out, out
        # kubectl exec goes through the API server to the kubelet.
        exec_ = real.kubectl(
            "exec",
            "stage-1",
            "--",
            "nslookup",
            "kubernetes.default.svc.cluster.local",
            namespace=ns,
        )
        assert "10.96.0.1" in exec_.stdout, exec_.stdout
    finally:
        real.kubectl("delete", "namespace", ns, "--wait=false", check=False)


def test_probe_reports_an_unreachable_neighbour(real: RealCluster) -> None:
    ns = "real-probe-fail"
    real.kubectl("create", "namespace", ns)
    real.wait(
        lambda: real.kubectl("get", "sa", "default", namespace=ns, check=False).returncode == 0,
        what="default ServiceAccount",
    )
    try:
        # One stage whose next stage does not exist: no Service, no DNS name.
        real.apply_yaml(
            probe_manifests(
                ns,
                1,
                GREENSHARD_SHARD_COUNT="2",
                GREENSHARD_NEXT_ADDRESS="stage-1",
                GREENSHARD_PROBE_TIMEOUT="6",
            ),
            namespace=ns,
        )
        pod = real.wait(
            lambda: (
                (p := real.get_json("pod", "stage-0", namespace=ns))["status"].get("phase")
                == "Failed"
                and p
            ),
            timeout=120,
            interval=1,
            what="stage-0 Failed",
        )
        out = logs(real, "stage-0", ns)
        assert "probe: next stage-1:29500 unresolved" in out, out
        assert "PIPELINE-PROBE FAIL" in out and "PIPELINE-PROBE OK" not in out, out
        assert pod["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"] == 1
    finally:
        real.kubectl("delete", "namespace", ns, "--wait=false", check=False)


def test_statefulset_pipelines_find_their_stages_by_pod_dns_name(real: RealCluster) -> None:
    """Issue 12's wiring, built by hand: one StatefulSet per stage, headless Services, the
    pipeline variables from the pod index. 2 stages x 2 replicas, one GPU each: the node's 4."""
    ns = "real-sts"
    real.kubectl("create", "namespace", ns)
    real.kubectl(
        "label", "namespace", ns, "pod-security.kubernetes.io/enforce=restricted", "--overwrite"
    )
    real.wait(
        lambda: real.kubectl("get", "sa", "default", namespace=ns, check=False).returncode == 0,
        what="default ServiceAccount",
    )
    try:
        real.apply_yaml(statefulsets("pipe", ns, stages=2, replicas=2, port=8000), namespace=ns)
        real.wait(
            lambda: (
                len(pods := real.pods(ns, "app=pipe")) == 4
                and all("PIPELINE-PROBE OK" in logs(real, p["metadata"]["name"], ns) for p in pods)
            ),
            timeout=180,
            interval=1,
            what="4 stages connected",
        )
        names = assert_pipeline_connected(real, ns, "app=pipe", stages=2, replicas=2, node=NODE)
        assert names[(1, 1)] == "pipe-shard-1-1", names
        out = logs(real, "pipe-shard-1-1", ns)
        assert "probe: leader pipe-shard-0-1.pipe-shard-0.real-sts.svc.cluster.local:8000" in out
        # The node's 4 GPUs are taken: a fifth pod asking for one stays Pending.
        node = real.get_json("node", NODE)
        assert node["status"]["allocatable"]["nvidia.com/gpu"] == "4"
        real.kubectl("scale", "statefulset", "pipe-shard-1", "--replicas=3", namespace=ns)
        real.wait(
            lambda: any(
                c.get("reason") == "Unschedulable" and "nvidia.com/gpu" in c.get("message", "")
                for c in real.get_json("pod", "pipe-shard-1-2", namespace=ns)["status"].get(
                    "conditions", []
                )
            ),
            timeout=60,
            what="pipe-shard-1-2 Unschedulable for lack of nvidia.com/gpu",
        )
    finally:
        real.kubectl("delete", "namespace", ns, "--wait=false", check=False)


def test_down_leaves_nothing_behind(real: RealCluster) -> None:
    during = machine_state(real.prefixes)
    # The counts can tell: the node added processes, mounts, a netns per pod, links, rules.
    for key in (
        "node processes",
        "mounts of the node",
        "network namespaces",
        "links",
        "iptables rules",
        "kubepods cgroups",
        "routes",
    ):
        assert during[key] > real.before[key], (key, real.before[key], during[key])
    t0 = time.monotonic()
    down = real.sh("down", timeout=300)
    assert down.returncode == 0, down.stderr
    took = time.monotonic() - t0
    after = machine_state(real.prefixes)
    print(
        textwrap.dedent(f"""
        down took {took:.1f}s
        {"":22} {"before":>8} {"during":>8} {"after":>8}""")
    )
    for key in real.before:
        if key != "sysctls":
            print(f"{key:22} {real.before[key]!s:>8} {during[key]!s:>8} {after[key]!s:>8}")
    assert after == real.before
