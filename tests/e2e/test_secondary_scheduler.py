"""The chart's secondary scheduler (scheduler.secondary.enabled) on a cluster whose own scheduler
is left as it is: the local control plane's kube-scheduler has no extender configured.

The chart is installed with the scheduler's and the extender's replicas at 0 (KWOK nodes run no
containers), so its ServiceAccount, RBAC and KubeSchedulerConfiguration are real objects of the
cluster; the test then runs the kube-scheduler binary built from hack/versions.env with that
configuration, as that ServiceAccount (a token kubeconfig), and `greenshard extender` as a local
process, as the extender's ServiceAccount (the ConfigMap's Service URL is replaced by the
process's loopback URL, the one change).
GridProfile: flat intensities, eu-north-1 30 gCO2e/kWh x PUE 1.2 the greenest region and L4 the
most efficient accelerator, so a carbon-aware pod belongs on eu-north-1-l4-0.
"""

from __future__ import annotations

import json
import re
import socket
import ssl
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import HACK, ROOT, Cluster

CHART = ROOT / "charts" / "greenshard"
SCHEDULER_NAME = "greenshard-scheduler"
GREENEST = "eu-north-1-l4-0"
PROFILE_SPEC = {
    "regions": {
        "eu-north-1": {"intensity": 30, "pue": 1.2},
        "us-east-1": {"intensity": 400, "pue": 1.1},
        "ap-southeast-2": {"intensity": 700, "pue": 1.3},
    },
    "accelerators": {
        "NVIDIA-H100-80GB-HBM3": {"joulesPerTeraflop": 1.75},
        "NVIDIA-A100-SXM4-40GB": {"joulesPerTeraflop": 3.2},
        "NVIDIA-L4": {"joulesPerTeraflop": 1.5},
        "cpu": {"joulesPerTeraflop": 60},
    },
    "links": {
        "samePoolJoulesPerByte": 1.0e-9,
        "sameRegionJoulesPerByte": 2.0e-7,
        "crossRegionJoulesPerByte": 2.0e-6,
    },
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def get(url: str) -> tuple[int, str]:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # kube-scheduler's self-signed serving certificate
    try:
        with urllib.request.urlopen(url, timeout=5, context=context) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as err:
        with err:
            return err.code, err.read().decode()


def spawn(argv: list[str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            argv, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT, start_new_session=True
        )


def stop(proc: subprocess.Popen[bytes] | None) -> None:
    if proc is not None and proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def token_kubeconfig(cluster: Cluster, namespace: str, account: str, path: Path) -> Path:
    """A kubeconfig that authenticates as the ServiceAccount NAMESPACE/ACCOUNT."""
    token = cluster.kubectl(
        "create", "token", account, "--duration=1h", namespace=namespace
    ).stdout.strip()
    admin = yaml.safe_load(Path(cluster.kubeconfig).read_text())
    context = next(c for c in admin["contexts"] if c["name"] == admin["current-context"])
    server = next(c for c in admin["clusters"] if c["name"] == context["context"]["cluster"])
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [server],
                "users": [{"name": account, "user": {"token": token}}],
                "contexts": [
                    {"name": account, "context": {"cluster": server["name"], "user": account}}
                ],
                "current-context": account,
            }
        )
    )
    return path


@dataclass
class Setup:
    cluster: Cluster
    namespace: str
    release: str
    tmp: Path
    extender_port: int
    lease: str


@pytest.fixture(scope="module")
def setup(crds: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    if not crds.local:
        pytest.skip("runs the locally built kube-scheduler binary against the local cluster")
    tmp = tmp_path_factory.mktemp("secondary-scheduler")
    suffix = uuid.uuid4().hex[:6]
    namespace, release = f"e2e-sched-{suffix}", f"gs-sched-{suffix}"
    crds.kubectl("create", "namespace", namespace)
    values = {
        "replicaCount": 0,
        "gridProfile": {"name": namespace, "spec": PROFILE_SPEC},
        "extender": {"enabled": True, "replicaCount": 0},
        "scheduler": {"secondary": {"enabled": True, "replicaCount": 0}},
    }
    (tmp / "values.yaml").write_text(yaml.safe_dump(values))
    crds.helm("install", release, str(CHART), "-f", str(tmp / "values.yaml"), namespace=namespace)
    port = free_port()
    # As the chart's extender ServiceAccount: its list-and-watch ClusterRole must be enough.
    extender_account = token_kubeconfig(
        crds, namespace, f"{release}-greenshard-extender", tmp / "extender.kubeconfig"
    )
    extender = spawn(
        [
            sys.executable, "-c", "import sys; from greenshard.cli import main; sys.exit(main())",
            "extender", "--address", "127.0.0.1", "--port", str(port), "--grid-profile", namespace,
            "--kubeconfig", str(extender_account), "--log-format", "json",
        ],
        tmp / "extender.log",
    )  # fmt: skip

    def extender_ready() -> bool:
        assert extender.poll() is None, (tmp / "extender.log").read_text()
        return get(f"http://127.0.0.1:{port}/readyz")[0] == 200

    try:
        crds.wait(extender_ready, timeout=60, what="the extender")
        yield Setup(crds, namespace, release, tmp, port, f"{release}-greenshard-scheduler")
    finally:
        stop(extender)
        crds.helm("uninstall", release, "--ignore-not-found", namespace=namespace, check=False)
        crds.kubectl("delete", "namespace", namespace, "--wait=false", check=False)


def pod(name: str, scheduler: str | None, gpus: int = 1) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "containers": [
            {
                "name": "main",
                "image": "registry.k8s.io/pause:3.10",
                "resources": {
                    "requests": {"cpu": "100m", "memory": "64Mi", "nvidia.com/gpu": str(gpus)},
                    "limits": {"nvidia.com/gpu": str(gpus)},
                },
            }
        ]
    }
    if scheduler:
        spec["schedulerName"] = scheduler
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"greenshard.io/carbon-aware": "true"}},
        "spec": spec,
    }


def node_of(cluster: Cluster, namespace: str, name: str) -> str:
    def bound() -> str:
        body = cluster.get_json("pod", name, namespace=namespace)
        return str(body["spec"].get("nodeName") or "")

    return cluster.wait(bound, timeout=60, what=f"pod {name} to be bound")


def scheduled_by(cluster: Cluster, namespace: str, name: str) -> str:
    events = cluster.items(
        "events", "--field-selector", f"involvedObject.name={name},reason=Scheduled",
        namespace=namespace,
    )  # fmt: skip
    assert events, f"no Scheduled event for {name}"
    return str(events[-1].get("reportingComponent") or events[-1]["source"]["component"])


def test_secondary_scheduler_places_opted_in_pods_carbon_aware(setup: Setup) -> None:
    cluster, ns = setup.cluster, setup.namespace
    # The chart's configuration, as installed; only the extender's URL changes (the test's
    # loopback process instead of the Service, which has no pods on KWOK nodes).
    configmap = cluster.get_json("configmap", setup.lease, namespace=ns)
    config = yaml.safe_load(configmap["data"]["config.yaml"])
    assert config["profiles"] == [{"schedulerName": SCHEDULER_NAME}]
    (extender,) = config["extenders"]
    assert extender["urlPrefix"] == f"http://{setup.release}-greenshard-extender.{ns}.svc:8888"
    extender["urlPrefix"] = f"http://127.0.0.1:{setup.extender_port}"
    account = token_kubeconfig(cluster, ns, setup.lease, setup.tmp / "scheduler.kubeconfig")
    config["clientConnection"] = {"kubeconfig": str(account)}
    (setup.tmp / "config.yaml").write_text(yaml.safe_dump(config))

    # Before the secondary scheduler runs, nobody schedules a pod that asks for it: the
    # cluster's own scheduler leaves it Pending.
    cluster.apply_yaml(json.dumps(pod("green-0", SCHEDULER_NAME)), namespace=ns)
    time.sleep(3)
    body = cluster.get_json("pod", "green-0", namespace=ns)
    assert not body["spec"].get("nodeName"), "the default scheduler took a greenshard-scheduler pod"

    port = free_port()
    scheduler = spawn(
        [
            str(HACK / "bin" / "kube-scheduler"),
            f"--config={setup.tmp / 'config.yaml'}",
            f"--authentication-kubeconfig={account}",
            f"--authorization-kubeconfig={account}",
            "--bind-address=127.0.0.1",
            f"--secure-port={port}",
            "--v=2",
        ],
        setup.tmp / "kube-scheduler.log",
    )
    try:

        def healthy() -> bool:
            assert scheduler.poll() is None, (setup.tmp / "kube-scheduler.log").read_text()[-3000:]
            return get(f"https://127.0.0.1:{port}/healthz")[0] == 200

        cluster.wait(healthy, timeout=60, what="the secondary kube-scheduler's /healthz")
        # Leader election through the chart's Role (a Lease named after the release).
        lease = cluster.wait(
            lambda: cluster.get_json("lease", setup.lease, namespace=ns)["spec"]["holderIdentity"],
            timeout=60,
            what="the scheduler's Lease",
        )
        assert lease

        assert node_of(cluster, ns, "green-0") == GREENEST
        cluster.apply_yaml(json.dumps(pod("green-1", SCHEDULER_NAME)), namespace=ns)
        assert node_of(cluster, ns, "green-1") == GREENEST
        assert scheduled_by(cluster, ns, "green-1") == SCHEDULER_NAME
        _, metrics = get(f"http://127.0.0.1:{setup.extender_port}/metrics")
        prioritized = [
            line for line in metrics.splitlines()
            if line.startswith("greenshard_extender_requests_total")
            and 'verb="prioritize"' in line and 'code="200"' in line
        ]  # fmt: skip
        assert prioritized and float(prioritized[0].rsplit(" ", 1)[1]) >= 2, metrics

        # The same pods without schedulerName stay with the cluster's scheduler, which knows
        # nothing of carbon: they spread over the nodes by load.
        nodes = []
        for i in range(3):
            cluster.apply_yaml(json.dumps(pod(f"plain-{i}", None)), namespace=ns)
            nodes.append(node_of(cluster, ns, f"plain-{i}"))
            assert scheduled_by(cluster, ns, f"plain-{i}") == "default-scheduler"
        assert set(nodes) != {GREENEST}, nodes
    finally:
        stop(scheduler)
    log = (setup.tmp / "kube-scheduler.log").read_text()
    assert "forbidden" not in log.lower(), [ln for ln in log.splitlines() if "orbidden" in ln][:5]


def test_extender_account_may_only_list_and_watch(setup: Setup) -> None:
    """The extender served every test above as its own ServiceAccount; it may do nothing more."""
    cluster, ns = setup.cluster, setup.namespace
    user = f"system:serviceaccount:{ns}:{setup.release}-greenshard-extender"

    def can_i(*args: str) -> bool:
        res = cluster.kubectl("auth", "can-i", *args, "--as", user, namespace=ns, check=False)
        assert res.stdout.strip() in ("yes", "no"), res.stdout + res.stderr
        return res.stdout.strip() == "yes"

    for verb in ("list", "watch"):
        assert can_i(verb, "nodes")
        assert can_i(verb, "gridprofiles.greenshard.io")
    for args in (
        ("get", "secrets"),
        ("list", "secrets", "--all-namespaces"),
        ("patch", "nodes"),
        ("create", "deployments.apps"),
        ("create", "statefulsets.apps"),
        ("delete", "pods"),
        ("patch", "gridprofiles.greenshard.io", "--subresource=status"),
        ("list", "inferencedeployments.greenshard.io", "--all-namespaces"),
    ):
        assert not can_i(*args), args


def test_scheduler_config_is_the_one_kube_scheduler_accepts(setup: Setup) -> None:
    """The rendered configuration passes kube-scheduler's own validation (--write-config-to
    parses, defaults and validates it, then exits)."""
    out = setup.tmp / "defaulted.yaml"
    configmap = setup.cluster.get_json("configmap", setup.lease, namespace=setup.namespace)
    raw = yaml.safe_load(configmap["data"]["config.yaml"])
    raw["clientConnection"] = {"kubeconfig": setup.cluster.kubeconfig}  # not in a pod here
    (setup.tmp / "raw.yaml").write_text(yaml.safe_dump(raw))
    res = subprocess.run(
        [str(HACK / "bin" / "kube-scheduler"), f"--config={setup.tmp / 'raw.yaml'}",
         f"--write-config-to={out}"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr[-2000:]
    written = yaml.safe_load(out.read_text())
    assert [p["schedulerName"] for p in written["profiles"]] == [SCHEDULER_NAME]
    assert written["extenders"][0]["ignorable"] is True
    assert written["leaderElection"]["resourceName"] == setup.lease


def test_scheduler_objects_pass_restricted_pod_security(crds: Cluster, namespace: str) -> None:
    crds.kubectl(
        "label", "namespace", namespace,
        "pod-security.kubernetes.io/enforce=restricted",
        "pod-security.kubernetes.io/warn=restricted",
    )  # fmt: skip
    rendered = crds.helm(
        "template", f"gs-{namespace[-6:]}", str(CHART), "--set", f"gridProfile.name={namespace}",
        "--set", "scheduler.secondary.enabled=true", "--set", "extender.enabled=true",
        namespace=namespace,
    ).stdout  # fmt: skip
    docs = [d for d in yaml.safe_load_all(rendered) if d]
    elsewhere = [d for d in docs if d["metadata"].get("namespace") == "kube-system"]
    assert [d["kind"] for d in elsewhere] == ["RoleBinding"]  # reads the authentication CA
    here = "\n---\n".join(yaml.safe_dump(d) for d in docs if d not in elsewhere)
    res = crds.kubectl(
        "apply", "--dry-run=server", "-f", "-", namespace=namespace, input=here, check=False
    )
    assert res.returncode == 0, res.stderr
    assert res.stderr.strip() == "", f"warnings on a restricted namespace:\n{res.stderr}"
    assert re.search(r"deployment.apps/gs-\S+-scheduler created \(server dry run\)", res.stdout)
    res = crds.kubectl(
        "apply", "--dry-run=server", "-f", "-", namespace="kube-system",
        input=yaml.safe_dump(elsewhere[0]), check=False,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
