"""Fixtures for end-to-end tests against a real Kubernetes control plane.

By default the session builds the tools (``hack/build-tools.sh``, a no-op when
they are built) and starts the local control plane (``hack/cluster.sh up``:
etcd, kube-apiserver, kube-controller-manager, kube-scheduler and KWOK nodes
from ``hack/nodes.yaml``) once, and stops it at the end.  A cluster that is
already up in the same state dir (``make cluster-up``) is reused and left
running.  ``GREENSHARD_E2E_KEEP_CLUSTER=1`` keeps a started cluster running.

``GREENSHARD_E2E_KUBECONFIG=/path/to/kubeconfig`` targets an existing cluster
instead: nothing is built, started or stopped.

Fixtures:
  cluster    (session)  a :class:`Cluster`: ``kubeconfig``, ``kubectl(...)``,
                        ``get_json(...)``, ``apply_yaml(...)``, ``helm(...)``,
                        ``wait(...)``, ``api_client()``
  namespace  (function) a fresh namespace, deleted after the test

Every test under tests/e2e is marked ``e2e`` (``-m "not e2e"`` skips them).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

E2E_DIR = Path(__file__).resolve().parent
ROOT = E2E_DIR.parents[1]
HACK = ROOT / "hack"
TESTDATA = E2E_DIR / "testdata"

T = TypeVar("T")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "e2e: end-to-end test against a real Kubernetes control plane (tests/e2e)"
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if E2E_DIR in Path(item.path).resolve().parents:
            item.add_marker(pytest.mark.e2e)


class CommandError(subprocess.CalledProcessError):
    """A kubectl / helm command failed; str() includes its stderr."""

    def __str__(self) -> str:
        cmd = " ".join(map(str, self.cmd))
        return f"`{cmd}` exited {self.returncode}:\n{(self.stderr or '').strip()}"


def versions() -> dict[str, str]:
    """hack/versions.env as a dict."""
    out = {}
    for line in (HACK / "versions.env").read_text().splitlines():
        m = re.match(r"^\s*([A-Z_]+)=(\S+)", line)
        if m:
            out[m.group(1)] = m.group(2)
    return out


def _tool(name: str) -> str | None:
    built = HACK / "bin" / name
    if built.is_file() and os.access(built, os.X_OK):
        return str(built)
    return shutil.which(name)


class Cluster:
    """A Kubernetes cluster reachable through ``kubeconfig``."""

    def __init__(self, kubeconfig: str, *, started: bool, local: bool, helm_home: Path) -> None:
        self.kubeconfig = kubeconfig
        self.started = started  # this session started it (and stops it)
        self.local = local  # the hack/cluster.sh control plane (not GREENSHARD_E2E_KUBECONFIG)
        self.versions = versions()  # hack/versions.env
        self.kubectl_bin = _tool("kubectl")
        self.helm_bin = _tool("helm")
        if not self.kubectl_bin:
            raise RuntimeError("no kubectl: run hack/build-tools.sh")
        helm_home.mkdir(parents=True, exist_ok=True)
        self.env = dict(os.environ, KUBECONFIG=kubeconfig)
        for var in ("HELM_CACHE_HOME", "HELM_CONFIG_HOME", "HELM_DATA_HOME"):
            self.env[var] = str(helm_home / var.lower())

    # -- commands ---------------------------------------------------------
    def run(
        self, argv: list[str], *, input: str | None = None, check: bool = True, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            argv,
            check=False,
            input=input,
            capture_output=True,
            text=True,
            env=self.env,
            timeout=timeout,
        )
        if check and proc.returncode != 0:
            raise CommandError(proc.returncode, argv, proc.stdout, proc.stderr)
        return proc

    def kubectl(
        self,
        *args: str,
        namespace: str | None = None,
        input: str | None = None,
        check: bool = True,
        timeout: float = 120,
    ) -> subprocess.CompletedProcess[str]:
        """Run kubectl against this cluster (text mode); raise CommandError on failure
        unless check=False."""
        argv = [str(self.kubectl_bin), "--kubeconfig", self.kubeconfig]
        if namespace:
            argv += ["--namespace", namespace]
        return self.run(argv + list(args), input=input, check=check, timeout=timeout)

    def get_json(self, *args: str, namespace: str | None = None) -> Any:
        """``kubectl get ARGS -o json``, parsed."""
        return json.loads(self.kubectl("get", *args, "-o", "json", namespace=namespace).stdout)

    def items(self, *args: str, namespace: str | None = None) -> list[dict[str, Any]]:
        """The items of ``kubectl get ARGS -o json``."""
        items: list[dict[str, Any]] = self.get_json(*args, namespace=namespace).get("items", [])
        return items

    def apply_yaml(
        self,
        text: str,
        *,
        namespace: str | None = None,
        check: bool = True,
        server_side: bool = False,
    ) -> subprocess.CompletedProcess[str]:
        """``kubectl apply -f -`` with TEXT (YAML or JSON, one or more documents)."""
        args = ["apply", "-f", "-"] + (["--server-side"] if server_side else [])
        return self.kubectl(*args, namespace=namespace, input=text, check=check)

    def create_yaml(
        self, text: str, *, namespace: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """``kubectl create -f -`` with TEXT."""
        return self.kubectl("create", "-f", "-", namespace=namespace, input=text, check=check)

    def delete_yaml(
        self, text: str, *, namespace: str | None = None, wait: bool = True
    ) -> subprocess.CompletedProcess[str]:
        return self.kubectl(
            "delete",
            "--ignore-not-found",
            f"--wait={str(wait).lower()}",
            "-f",
            "-",
            namespace=namespace,
            input=text,
        )

    def helm(
        self, *args: str, namespace: str | None = None, check: bool = True, timeout: float = 300
    ) -> subprocess.CompletedProcess[str]:
        if not self.helm_bin:
            raise RuntimeError("no helm: run hack/build-tools.sh")
        argv = [self.helm_bin, "--kubeconfig", self.kubeconfig]
        if namespace:
            argv += ["--namespace", namespace]
        return self.run(argv + list(args), check=check, timeout=timeout)

    # -- waiting ----------------------------------------------------------
    @staticmethod
    def wait(
        predicate: Callable[[], T],
        *,
        timeout: float = 60,
        interval: float = 0.5,
        what: str = "condition",
    ) -> T:
        """Poll PREDICATE until it returns something truthy, and return that.
        Exceptions count as "not yet"; on timeout raise TimeoutError naming WHAT and
        the last value or exception."""
        deadline = time.monotonic() + timeout
        last: Any = None
        while True:
            try:
                value = predicate()
                if value:
                    return value
                last = value
            except Exception as exc:
                last = exc
            if time.monotonic() >= deadline:
                raise TimeoutError(f"timed out after {timeout}s waiting for {what}; last: {last!r}")
            time.sleep(interval)

    def wait_rollout(self, deployment: str, *, namespace: str, timeout: int = 120) -> None:
        self.kubectl(
            "rollout",
            "status",
            f"deployment/{deployment}",
            f"--timeout={timeout}s",
            namespace=namespace,
            timeout=timeout + 30,
        )

    # -- python client ----------------------------------------------------
    def api_client(self) -> Any:
        """A new kubernetes.client.ApiClient for this cluster (close it, or use `with`)."""
        from kubernetes import config

        return config.new_client_from_config(config_file=self.kubeconfig)  # type: ignore[no-untyped-call]

    def node_labels(self) -> dict[str, dict[str, str]]:
        """Node name -> labels."""
        return {n["metadata"]["name"]: n["metadata"].get("labels", {}) for n in self.items("nodes")}

    def pods(self, namespace: str, selector: str = "") -> list[dict[str, Any]]:
        """The pods in NAMESPACE (matching the label SELECTOR, if given)."""
        return self.items("pods", *(["-l", selector] if selector else []), namespace=namespace)

    def server_version(self) -> dict[str, Any]:
        version: dict[str, Any] = json.loads(self.kubectl("version", "-o", "json").stdout)
        return version["serverVersion"]  # type: ignore[no-any-return]


def _stream(pytestconfig: pytest.Config, argv: list[str], timeout: float) -> None:
    """Run ARGV with its output shown live (not captured by pytest)."""
    capman = pytestconfig.pluginmanager.getplugin("capturemanager")
    ctx = capman.global_and_fixture_disabled() if capman else contextlib.nullcontext()
    with ctx:
        print(f"\n[e2e] $ {' '.join(argv)}", flush=True)
        proc = subprocess.run(argv, cwd=ROOT, timeout=timeout, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"`{' '.join(argv)}` failed with exit code {proc.returncode}")


@pytest.fixture(scope="session")
def cluster(
    pytestconfig: pytest.Config, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Cluster]:
    helm_home = tmp_path_factory.mktemp("helm-home")
    external = os.environ.get("GREENSHARD_E2E_KUBECONFIG")
    if external:
        if not Path(external).is_file():
            raise RuntimeError(f"GREENSHARD_E2E_KUBECONFIG={external}: no such file")
        yield Cluster(
            str(Path(external).resolve()), started=False, local=False, helm_home=helm_home
        )
        return

    _stream(pytestconfig, ["bash", str(HACK / "build-tools.sh")], timeout=3600)
    cluster_sh = str(HACK / "cluster.sh")
    already_up = (
        subprocess.run(
            ["bash", cluster_sh, "status"], cwd=ROOT, capture_output=True, text=True, check=False
        ).returncode
        == 0
    )
    if not already_up:
        _stream(pytestconfig, ["bash", cluster_sh, "up", "--real-nodes-file", "none"], timeout=900)
    kubeconfig = subprocess.run(
        ["bash", cluster_sh, "kubeconfig"], cwd=ROOT, check=True, capture_output=True, text=True
    ).stdout.strip()
    started = not already_up
    try:
        yield Cluster(kubeconfig, started=started, local=True, helm_home=helm_home)
    finally:
        if started and os.environ.get("GREENSHARD_E2E_KEEP_CLUSTER", "") in ("", "0"):
            _stream(pytestconfig, ["bash", cluster_sh, "down"], timeout=120)


def _namespace_name(nodeid: str) -> str:
    base = re.sub(r"[^a-z0-9]+", "-", nodeid.rsplit("::", maxsplit=1)[-1].lower()).strip("-")
    return f"e2e-{base[:45].strip('-')}-{uuid.uuid4().hex[:6]}"


@pytest.fixture
def namespace(cluster: Cluster, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh namespace (with its default ServiceAccount ready), deleted after the test."""
    name = _namespace_name(request.node.nodeid)
    cluster.kubectl("create", "namespace", name)
    cluster.kubectl("label", "namespace", name, "greenshard.dev/e2e=true")
    # Pods are refused until the controller manager has made the default ServiceAccount.
    cluster.wait(
        lambda: (
            cluster.kubectl(
                "get", "serviceaccount", "default", namespace=name, check=False
            ).returncode
            == 0
        ),
        timeout=60,
        what=f"ServiceAccount default in {name}",
    )
    try:
        yield name
    finally:
        # Waited for: a namespace still terminating holds its pods' GPUs and its
        # InferenceDeployments' bookings, which the next test's plans would have to share.
        cluster.kubectl(
            "delete",
            "namespace",
            name,
            "--wait=true",
            "--timeout=180s",
            "--ignore-not-found",
            check=False,
            timeout=200,
        )


@pytest.fixture(scope="module")
def crds(cluster: Cluster) -> Cluster:
    """The cluster with GreenShard's CRDs applied and established."""
    root = Path(__file__).resolve().parents[2]
    cluster.kubectl("apply", "-f", str(root / "crds"))
    # Polled: `kubectl wait --for=condition=Established` fails at once ("status.conditions
    # accessor error") when it reads a CRD whose status the server has not written yet.
    established = '{.status.conditions[?(@.type=="Established")].status}'
    for crd in ("inferencedeployments.greenshard.io", "gridprofiles.greenshard.io"):
        cluster.wait(
            lambda crd=crd: (
                cluster.kubectl("get", "crd", crd, "-o", f"jsonpath={established}").stdout == "True"
            ),
            timeout=60,
            what=f"CRD {crd} Established",
        )
        # Established comes before the resource's storage serves: a list right after a changed
        # CRD is answered 429 "storage is (re)initializing", which the operator logs as an error.
        cluster.wait(
            lambda crd=crd: cluster.kubectl("get", crd, "-A", check=False).returncode == 0,
            timeout=60,
            what=f"{crd} served",
        )
    return cluster
