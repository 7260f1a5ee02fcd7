"""The Helm chart against the real control plane: it lints strictly, its schema rejects typos,
its objects pass Pod Security "restricted" without a warning, its ServiceAccount can do exactly
what tests/e2e/testdata/expected-rbac.txt lists, and upgrade and uninstall work (uninstall
leaves the CRDs and nothing else)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import yaml

if TYPE_CHECKING:
    from collections.abc import Iterator

    from conftest import Cluster

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "greenshard"
EXPECTED_RBAC = Path(__file__).resolve().parent / "testdata" / "expected-rbac.txt"
CRDS = ("inferencedeployments.greenshard.io", "gridprofiles.greenshard.io")
SCHEMA_ERROR = "don't meet the specifications of the schema"


def release_of(namespace: str) -> str:
    """A release name unique to the test (its cluster-scoped objects are named after it)."""
    return f"gs-{namespace.rsplit('-', 1)[-1]}"


@pytest.fixture
def release(cluster: Cluster, namespace: str) -> Iterator[str]:
    """The test's release name; uninstalled afterwards, since deleting the namespace would
    leave its cluster-scoped objects (ClusterRole, ClusterRoleBinding, GridProfile) behind."""
    name = release_of(namespace)
    try:
        yield name
    finally:
        cluster.helm("uninstall", name, "--ignore-not-found", namespace=namespace, check=False)


def own_values(namespace: str) -> list[str]:
    """--set flags that keep the release's cluster-scoped GridProfile apart from others."""
    return ["--set", f"gridProfile.name={namespace}"]


def template(cluster: Cluster, *args: str) -> str:
    """`helm template gs CHART ARGS` (release "gs" in namespace gs-system)."""
    return cluster.helm("template", "gs", str(CHART), "--namespace", "gs-system", *args).stdout


def docs(text: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(text) if d]


def operator_container(manifests: list[dict[str, Any]]) -> dict[str, Any]:
    (deployment,) = [d for d in manifests if d["kind"] == "Deployment"]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return container  # type: ignore[no-any-return]


def install_crds(cluster: Cluster) -> None:
    """The CRDs the way the README says (Helm skips existing ones on install)."""
    cluster.kubectl("apply", "-f", str(CHART / "crds"))
    for crd in CRDS:
        cluster.kubectl("wait", "--for=condition=Established", f"crd/{crd}", "--timeout=60s")


# ------------------------------------------------------------------------ lint and values


def test_chart_lints_strictly(cluster: Cluster) -> None:
    res = cluster.helm("lint", "--strict", str(CHART))
    assert "1 chart(s) linted, 0 chart(s) failed" in res.stdout, res.stdout


@pytest.mark.parametrize(
    ("flag", "complaint"),
    [
        ("typoKey=1", "additional properties 'typoKey' not allowed"),
        ("solver.maxQubit=20", "additional properties 'maxQubit' not allowed"),
        ("image.pullpolicy=Always", "additional properties 'pullpolicy' not allowed"),
        ("gridProfile.spec.links.samePool=1", "additional properties 'samePool' not allowed"),
        ("solver.maxQubits=29", "maximum: got 29, want 28"),
        ("replicaCount=2", "maximum: got 2, want 1"),
    ],
)
def test_values_schema_rejects_typos_at_install(
    cluster: Cluster, flag: str, complaint: str
) -> None:
    res = cluster.helm("template", "gs", str(CHART), "--set", flag, check=False)
    assert res.returncode != 0
    assert SCHEMA_ERROR in res.stderr, res.stderr
    assert complaint in res.stderr, res.stderr


def test_lint_fails_on_a_typo(cluster: Cluster) -> None:
    res = cluster.helm("lint", "--strict", str(CHART), "--set", "typoKey=1", check=False)
    assert res.returncode != 0
    assert "additional properties 'typoKey' not allowed" in res.stdout + res.stderr


@pytest.mark.parametrize(
    ("qubits", "memory", "solver_gib"),
    [(20, "664Mi", "0.3984375"), (22, "736Mi", "0.46875"), (24, "1024Mi", "0.75")],
)
def test_memory_is_sized_from_the_qubit_budget(
    cluster: Cluster, qubits: int, memory: str, solver_gib: str
) -> None:
    container = operator_container(docs(template(cluster, "--set", f"solver.maxQubits={qubits}")))
    resources = container["resources"]
    assert resources["requests"]["memory"] == resources["limits"]["memory"] == memory
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["GREENSHARD_MAX_QUBITS"] == str(qubits)
    # The solver process's bound: the limit less the operator process's 256Mi.
    assert env["GREENSHARD_SOLVER_MEMORY_GIB"] == solver_gib


def test_operator_share_must_leave_memory_for_the_solver(cluster: Cluster) -> None:
    base = yaml.safe_load((CHART / "values.yaml").read_text())["resources"]["memory"]["baseMi"]
    res = cluster.helm(
        "template", "gs", str(CHART), "--set", f"resources.memory.operatorMi={base}", check=False
    )
    assert res.returncode != 0
    assert f"operatorMi ({base}) must be less than resources.memory.baseMi ({base})" in res.stderr


def test_deployment_runs_one_operator_with_probes(cluster: Cluster) -> None:
    manifests = docs(template(cluster))
    (deployment,) = [d for d in manifests if d["kind"] == "Deployment"]
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    container = operator_container(manifests)
    assert "command" not in container  # the image's entrypoint, `greenshard`
    assert container["args"] == [
        "run", "--liveness-port", "8080", "--metrics-port", "9090", "--log-level", "INFO",
    ]  # fmt: skip
    for probe in ("livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"] == {"path": "/healthz", "port": "healthz"}
    assert {"name": "healthz", "containerPort": 8080, "protocol": "TCP"} in container["ports"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["volumeMounts"] == [{"name": "tmp", "mountPath": "/tmp"}]
    (service,) = [d for d in manifests if d["kind"] == "Service"]
    assert service["spec"]["ports"] == [
        {"name": "metrics", "port": 9090, "targetPort": "metrics", "protocol": "TCP"}
    ]
    kinds = sorted(d["kind"] for d in manifests)
    assert kinds == [
        "ClusterRole",
        "ClusterRole",
        "ClusterRole",
        "ClusterRoleBinding",
        "Deployment",
        "GridProfile",
        "Service",
        "ServiceAccount",
    ]
    for manifest in manifests:
        labels = manifest["metadata"]["labels"]
        assert labels["app.kubernetes.io/instance"] == "gs", manifest["kind"]
        assert labels["app.kubernetes.io/name"] == "greenshard", manifest["kind"]
        assert labels["app.kubernetes.io/managed-by"] == "Helm", manifest["kind"]


# -------------------------------------------------------------------------- Pod Security


def label_restricted(cluster: Cluster, namespace: str) -> None:
    cluster.kubectl(
        "label",
        "namespace",
        namespace,
        "pod-security.kubernetes.io/enforce=restricted",
        "pod-security.kubernetes.io/enforce-version=latest",
        "pod-security.kubernetes.io/warn=restricted",
        "pod-security.kubernetes.io/warn-version=latest",
    )


def test_rendered_chart_passes_restricted_pod_security_without_warnings(
    cluster: Cluster, namespace: str
) -> None:
    install_crds(cluster)
    label_restricted(cluster, namespace)
    rendered = cluster.helm(
        "template", release_of(namespace), str(CHART), *own_values(namespace), namespace=namespace
    ).stdout
    res = cluster.kubectl(
        "apply", "--dry-run=server", "-f", "-", namespace=namespace, input=rendered, check=False
    )
    assert res.returncode == 0, res.stderr
    assert res.stderr.strip() == "", f"warnings on a restricted namespace:\n{res.stderr}"
    assert len(re.findall(r"created \(server dry run\)", res.stdout)) == 8, res.stdout

    # The check can fail: the same objects with a capability kept are warned about.
    manifests = docs(rendered)
    operator_container(manifests)["securityContext"]["capabilities"] = {"add": ["NET_RAW"]}
    weakened = "\n---\n".join(yaml.safe_dump(m) for m in manifests)
    res = cluster.kubectl(
        "apply", "--dry-run=server", "-f", "-", namespace=namespace, input=weakened, check=False
    )
    assert 'would violate PodSecurity "restricted:latest"' in res.stderr, res.stderr


# ---------------------------------------------------------------------------------- RBAC


def can_i_list(cluster: Cluster, user: str, namespace: str) -> set[str]:
    """`kubectl auth can-i --list` as USER in NAMESPACE, one normalised line per grant:
    "resource NAME[ names=...] VERBS" or "nonResourceURL URL VERBS", verbs sorted."""
    out = cluster.kubectl("auth", "can-i", "--list", "--as", user, namespace=namespace).stdout
    rows = re.compile(r"^(\S*)\s+\[([^\]]*)\]\s+\[([^\]]*)\]\s+\[([^\]]*)\]\s*$")
    grants: set[str] = set()
    for line in out.splitlines()[1:]:
        m = rows.match(line)
        assert m, f"unexpected line of kubectl auth can-i --list: {line!r}"
        resource, urls, names, verbs = (m.group(i) for i in range(1, 5))
        verb_text = ",".join(sorted(verbs.split()))
        if resource:
            named = f" names={','.join(sorted(names.split()))}" if names else ""
            grants.add(f"resource {resource}{named} {verb_text}")
        for url in urls.split():
            grants.add(f"nonResourceURL {url} {verb_text}")
    return grants


def can_i(cluster: Cluster, user: str, namespace: str, *args: str) -> bool:
    res = cluster.kubectl("auth", "can-i", *args, "--as", user, namespace=namespace, check=False)
    assert res.stdout.strip() in ("yes", "no"), res.stdout + res.stderr
    return res.stdout.strip() == "yes"


def expected_rbac() -> list[str]:
    lines = EXPECTED_RBAC.read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def test_service_account_has_exactly_the_expected_rights(
    cluster: Cluster, namespace: str, release: str
) -> None:
    cluster.helm("install", release, str(CHART), *own_values(namespace), namespace=namespace)
    operator = f"system:serviceaccount:{namespace}:{release}-greenshard"
    cluster.kubectl("get", "serviceaccount", f"{release}-greenshard", namespace=namespace)

    # What the chart grants: the operator's rights less those every ServiceAccount has.
    baseline = can_i_list(cluster, f"system:serviceaccount:{namespace}:default", namespace)
    granted = can_i_list(cluster, operator, namespace)
    assert baseline <= granted
    assert sorted(granted - baseline) == expected_rbac()

    for args in (
        ("get", "secrets"),
        ("list", "secrets"),
        ("get", "secrets", "--all-namespaces"),
        ("watch", "secrets", "--all-namespaces"),
        ("patch", "nodes"),
        ("update", "nodes"),
        ("delete", "nodes"),
        ("create", "pods"),
        ("patch", "deployments.apps"),
        ("delete", "inferencedeployments.greenshard.io"),
        ("create", "clusterkopfpeerings.kopf.dev"),
        ("escalate", "clusterroles"),
    ):
        assert not can_i(cluster, operator, namespace, *args), args
    assert can_i(cluster, operator, namespace, "watch", "nodes")
    assert can_i(
        cluster,
        operator,
        namespace,
        "patch",
        "inferencedeployments.greenshard.io",
        "--subresource=status",
        "--all-namespaces",
    )


# ---------------------------------------------------------------------- upgrade, uninstall


def release_objects(cluster: Cluster, release: str) -> list[str]:
    """Every object in the cluster, of any listable kind, labelled with the release."""
    kinds = cluster.kubectl("api-resources", "--verbs=list", "-o", "name").stdout.split()
    kinds = [k for k in kinds if k != "componentstatuses"]
    out = cluster.kubectl(
        "get",
        ",".join(kinds),
        "--all-namespaces",
        "-l",
        f"app.kubernetes.io/instance={release}",
        "-o",
        "name",
    ).stdout
    return out.split()


def test_upgrade_with_changed_values_and_uninstall(
    cluster: Cluster, namespace: str, release: str
) -> None:
    deployment = f"{release}-greenshard"
    res = cluster.helm("install", release, str(CHART), *own_values(namespace), namespace=namespace)
    assert f"rollout status deployment/{deployment}" in res.stdout  # NOTES.txt

    def container() -> dict[str, Any]:
        spec = cluster.get_json("deployment", deployment, namespace=namespace)["spec"]
        return spec["template"]["spec"]["containers"][0]  # type: ignore[no-any-return]

    assert container()["resources"]["limits"]["memory"] == "664Mi"
    default_pue = yaml.safe_load((CHART / "values.yaml").read_text())["gridProfile"]["spec"][
        "regions"
    ]["eu-north-1"]["pue"]
    assert (
        cluster.get_json("gridprofile", namespace)["spec"]["regions"]["eu-north-1"]["pue"]
        == default_pue
    )
    objects = release_objects(cluster, release)
    for name in (
        f"serviceaccount/{deployment}",
        f"deployment.apps/{deployment}",
        f"service/{deployment}-metrics",
        f"clusterrole.rbac.authorization.k8s.io/{deployment}",
        f"clusterrolebinding.rbac.authorization.k8s.io/{deployment}",
        f"gridprofile.greenshard.io/{namespace}",
    ):
        assert name in objects, objects

    operator = f"system:serviceaccount:{namespace}:{deployment}"
    assert not can_i(cluster, operator, namespace, "get", "secrets/carbon-key")
    cluster.helm(
        "upgrade",
        release,
        str(CHART),
        *own_values(namespace),
        "--set",
        "solver.maxQubits=22",
        "--set",
        "carbonProvider.secretRef.name=carbon-key",
        namespace=namespace,
    )
    status = cluster.helm("status", release, "-o", "json", namespace=namespace).stdout
    assert '"version":2' in status.replace(" ", "")
    assert container()["resources"]["limits"]["memory"] == "736Mi"
    assert container()["resources"]["requests"]["memory"] == "736Mi"
    env = {e["name"]: e.get("value") for e in container()["env"]}
    assert env["GREENSHARD_MAX_QUBITS"] == "22"
    assert env["GREENSHARD_SOLVER_MEMORY_GIB"] == "0.46875"
    assert not [name for name in env if name.startswith("GREENSHARD_CARBON_SECRET")]
    # The provider's Secret, by name and only it.
    assert can_i(cluster, operator, namespace, "get", "secrets/carbon-key")
    assert not can_i(cluster, operator, namespace, "get", "secrets/other")
    assert not can_i(cluster, operator, namespace, "get", "secrets")
    assert not can_i(cluster, operator, namespace, "list", "secrets")
    assert not can_i(cluster, operator, "default", "get", "secrets/carbon-key")

    cluster.helm("uninstall", release, "--wait", "--timeout", "120s", namespace=namespace)
    assert cluster.helm("list", "-q", namespace=namespace).stdout.strip() == ""
    # By design Helm leaves the CRDs (and so every InferenceDeployment) in place...
    for crd in CRDS:
        cluster.kubectl("get", "crd", crd)
    # ...and nothing else of the release (the pods go with their ReplicaSet).
    left: list[str] = []

    def nothing_left() -> bool:
        left[:] = release_objects(cluster, release)
        return not left

    try:
        cluster.wait(nothing_left, timeout=60, what="the release's objects to be gone")
    except TimeoutError:
        pytest.fail(f"left after helm uninstall: {left}")


# ------------------------------------------------------------------- aggregated roles


def test_namespace_editors_and_viewers_get_rights_on_the_crds(
    cluster: Cluster, namespace: str, release: str
) -> None:
    """rbac.aggregateToDefaultRoles folds GreenShard's resources into the built-in roles."""
    editor, viewer = f"alice-{namespace}", f"bob-{namespace}"
    for user, role in ((editor, "edit"), (viewer, "view")):
        cluster.kubectl(
            "create", "rolebinding", f"{user}-{role}", f"--clusterrole={role}", f"--user={user}",
            namespace=namespace,
        )  # fmt: skip
    infd = "inferencedeployments.greenshard.io"
    flags = [*own_values(namespace), "--set", "rbac.aggregateToDefaultRoles=false"]
    cluster.helm("install", release, str(CHART), *flags, namespace=namespace)
    assert not can_i(cluster, editor, namespace, "create", infd)
    assert not can_i(cluster, viewer, namespace, "list", infd)

    cluster.helm("upgrade", release, str(CHART), *own_values(namespace), namespace=namespace)

    def aggregated() -> bool:  # the clusterrole-aggregation controller fills the roles
        return can_i(cluster, editor, namespace, "create", infd)

    cluster.wait(aggregated, timeout=30, what="edit to include InferenceDeployments")
    assert can_i(cluster, editor, namespace, "delete", infd)
    assert can_i(cluster, viewer, namespace, "list", infd)
    assert can_i(cluster, viewer, namespace, "get", infd, "--subresource=status")
    assert not can_i(cluster, viewer, namespace, "create", infd)
    assert not can_i(cluster, editor, namespace, "patch", infd, "--subresource=status")
    assert not can_i(cluster, editor, namespace, "create", f"{infd}", "-n", "default")
