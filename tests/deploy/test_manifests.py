"""Structure of every rendered overlay: the notes' objects, wired to each other and to the real server."""

from __future__ import annotations

import base64
import re
import subprocess
from typing import Any

from mlkube.settings import Settings
from tests.deploy.dockerfile import parse_dockerfile
from tests.deploy.rendered import Doc, Rendered, pod_env
from tests.deploy.tools import DOCKERFILE, REPO
from tests.support import RunningServer

NOTES_CLASS_NAMES = "setosa,versicolor,virginica"
NOTES_CONFIG_KEYS = {"CLASS_NAMES", "MODEL_VERSION", "LOG_LEVEL"}
NOTES_RESOURCES = {
    "requests": {"cpu": "100m", "memory": "128Mi"},
    "limits": {"cpu": "500m", "memory": "256Mi"},
}
HPA_RANGE = {"minikube": (2, 5), "production": (3, 20)}
SETTINGS_NAMES = {name.upper() for name in Settings.__struct_fields__}
CLUSTER_SCOPED = {"Namespace"}


def labels_match(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return bool(selector) and all(labels.get(key) == value for key, value in selector.items())


def pod_labels(rendered: Rendered) -> dict[str, str]:
    labels: dict[str, str] = rendered.deployment["spec"]["template"]["metadata"]["labels"]
    return labels


def container_port(container: Doc, port: int | str) -> int:
    """A probe's or Service's port, by number or by the container port's name."""
    if isinstance(port, int):
        return port
    named = [p["containerPort"] for p in container["ports"] if p.get("name") == port]
    assert named, f"no container port named {port!r}"
    return int(named[0])


def prestop_seconds(container: Doc) -> float:
    """Seconds a preStop hook waits: the native `sleep` action or `python -c 'import time; time.sleep(N)'`."""
    hook: dict[str, Any] = container.get("lifecycle", {}).get("preStop", {})
    if "sleep" in hook:
        return float(hook["sleep"]["seconds"])
    if "exec" in hook:
        match = re.search(r"sleep\(?\s*([\d.]+)", " ".join(hook["exec"]["command"]))
        assert match, f"preStop exec hook of unknown length: {hook}"
        return float(match.group(1))
    assert not hook, f"preStop hook of unknown length: {hook}"
    return 0.0


def test_overlay_renders_the_notes_objects(rendered: Rendered) -> None:
    names = {(doc["kind"], doc["metadata"]["name"]) for doc in rendered.docs}
    for kind, name in [
        ("Deployment", "ml-model-deployment"),
        ("Service", "ml-model-service"),
        ("HorizontalPodAutoscaler", "ml-model-hpa"),
        ("ServiceAccount", "ml-model"),
        ("PodDisruptionBudget", "ml-model-pdb"),
    ]:
        assert (kind, name) in names, f"{rendered.variant}: no {kind} {name}"
    config_map = rendered.one("ConfigMap")["metadata"]["name"]
    assert re.fullmatch(r"ml-model-config-[a-z0-9]{10}", config_map), (
        "the generator's hash suffix is expected"
    )


def test_every_object_carries_the_notes_label(rendered: Rendered) -> None:
    for doc in rendered.docs:
        if doc["kind"] not in CLUSTER_SCOPED:
            assert doc["metadata"]["labels"]["app"] == "ml-model", f"{doc['kind']} {doc['metadata']['name']}"


def test_container_is_the_notes_container_on_port_5000(rendered: Rendered) -> None:
    assert rendered.container["name"] == "ml-model"
    assert rendered.container["ports"] == [{"name": "http", "containerPort": 5000, "protocol": "TCP"}]


def test_selectors_match_the_pod_labels(rendered: Rendered) -> None:
    labels = pod_labels(rendered)
    assert rendered.deployment["spec"]["selector"] == {"matchLabels": {"app": "ml-model"}}
    assert labels_match(rendered.deployment["spec"]["selector"]["matchLabels"], labels)
    assert labels_match(rendered.one("Service")["spec"]["selector"], labels)
    assert labels_match(rendered.one("PodDisruptionBudget")["spec"]["selector"]["matchLabels"], labels)
    for constraint in rendered.pod_spec["topologySpreadConstraints"]:
        assert labels_match(constraint["labelSelector"]["matchLabels"], labels)
    for policy in rendered.all("NetworkPolicy"):
        assert labels_match(policy["spec"]["podSelector"]["matchLabels"], labels)


def test_service_sends_port_5000_to_the_container_port(rendered: Rendered) -> None:
    [port] = rendered.one("Service")["spec"]["ports"]
    assert port["port"] == 5000
    assert container_port(rendered.container, port["targetPort"]) == 5000


def test_configmap_holds_the_notes_keys_and_reaches_the_container(rendered: Rendered) -> None:
    config_map = rendered.one("ConfigMap")
    assert set(config_map["data"]) == NOTES_CONFIG_KEYS
    assert config_map["data"]["CLASS_NAMES"] == NOTES_CLASS_NAMES
    assert config_map["data"]["LOG_LEVEL"] == "INFO"
    assert config_map["data"]["MODEL_VERSION"] == "", "empty: each pod reports its own image's model version"
    assert rendered.container["envFrom"] == [{"configMapRef": {"name": config_map["metadata"]["name"]}}]


def test_every_variable_the_pod_sets_is_a_real_setting(rendered: Rendered) -> None:
    unknown = set(pod_env(rendered)) - SETTINGS_NAMES
    assert not unknown, f"not read by mlkube.settings.Settings: {sorted(unknown)}"


def test_api_key_is_a_mounted_file_never_an_environment_variable(rendered: Rendered) -> None:
    container, pod = rendered.container, rendered.pod_spec
    assert all("secretRef" not in source for source in container["envFrom"])
    assert all("valueFrom" not in item for item in container["env"])
    [volume] = [v for v in pod["volumes"] if "secret" in v]
    [mount] = [m for m in container["volumeMounts"] if m["name"] == volume["name"]]
    [item] = volume["secret"]["items"]
    assert item["key"] == "API_KEY"
    assert pod_env(rendered)["API_KEY_FILE"] == f"{mount['mountPath']}/{item['path']}"
    assert mount["readOnly"] is True
    assert volume["secret"]["defaultMode"] == 0o440, "readable by the pod's group only"
    assert pod["securityContext"]["fsGroup"] == pod["securityContext"]["runAsGroup"]


def test_the_secret_comes_from_outside_unless_the_component_generates_it(rendered: Rendered) -> None:
    [volume] = [v for v in rendered.pod_spec["volumes"] if "secret" in v]
    secrets = rendered.all("Secret")
    if rendered.api_key is None:
        assert secrets == [], "no Secret is committed: kubectl create secret generic ml-model-secret ..."
        assert volume["secret"]["secretName"] == "ml-model-secret"  # pragma: allowlist secret
        return
    [secret] = secrets
    assert re.fullmatch(r"ml-model-secret-[a-z0-9]{10}", secret["metadata"]["name"])
    assert volume["secret"]["secretName"] == secret["metadata"]["name"], "kustomize rewrites the reference"
    assert base64.b64decode(secret["data"]["API_KEY"]).decode() == rendered.api_key


def test_probes_use_the_routes_the_server_serves(rendered: Rendered) -> None:
    container = rendered.container
    assert container["livenessProbe"]["httpGet"]["path"] == "/health"
    assert container["readinessProbe"]["httpGet"]["path"] == "/ready"
    assert container["startupProbe"]["httpGet"]["path"] == "/health"
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        assert container_port(container, container[probe]["httpGet"]["port"]) == 5000


def test_probe_and_scrape_paths_answer_200_on_a_real_server(
    renders: dict[str, Rendered], server: RunningServer
) -> None:
    paths = {
        rendered.container[probe]["httpGet"]["path"]
        for rendered in renders.values()
        for probe in ("livenessProbe", "readinessProbe", "startupProbe")
    }
    paths |= {
        r.deployment["spec"]["template"]["metadata"]["annotations"]["prometheus.io/path"]
        for r in renders.values()
    }
    for path in sorted(paths):
        assert server.client.get(path).status_code == 200, path


def test_hpa_scales_the_deployment_on_cpu_at_50_percent(rendered: Rendered) -> None:
    hpa = rendered.one("HorizontalPodAutoscaler")
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "ml-model-deployment",
    }
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == HPA_RANGE[rendered.overlay]
    [metric] = hpa["spec"]["metrics"]
    assert metric == {
        "type": "Resource",
        "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 50}},
    }


def test_deployment_leaves_the_replica_count_to_the_hpa(rendered: Rendered) -> None:
    assert "replicas" not in rendered.deployment["spec"]


def test_rolling_update_starts_a_new_pod_before_stopping_an_old_one(rendered: Rendered) -> None:
    assert rendered.deployment["spec"]["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1},
    }


def test_termination_grace_covers_prestop_drain_and_grace(rendered: Rendered) -> None:
    env, defaults = pod_env(rendered), Settings()
    drain = float(env.get("DRAIN_SECONDS", defaults.drain_seconds))
    grace = float(env.get("GRACE_SECONDS", defaults.grace_seconds))
    budget = prestop_seconds(rendered.container) + drain + grace
    assert drain > 0, "the server must keep serving while endpoints are removed"
    assert rendered.pod_spec["terminationGracePeriodSeconds"] >= budget


def test_pod_meets_the_restricted_pod_security_standard(rendered: Rendered) -> None:
    pod, container = rendered.pod_spec, rendered.container
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert pod["securityContext"]["runAsUser"] >= 10000
    assert not {"hostNetwork", "hostPID", "hostIPC"} & set(pod)
    assert all("hostPath" not in volume for volume in pod["volumes"])
    [tmp] = [m for m in container["volumeMounts"] if m["mountPath"] == "/tmp"]
    [volume] = [v for v in pod["volumes"] if v["name"] == tmp["name"]]
    assert "emptyDir" in volume, "the only writable place is an emptyDir at /tmp"


def test_pod_user_is_the_images_user(rendered: Rendered) -> None:
    user = parse_dockerfile(DOCKERFILE).final_stage.last("USER").value
    uid, gid = (int(part) for part in user.split(":"))
    context = rendered.pod_spec["securityContext"]
    assert (context["runAsUser"], context["runAsGroup"]) == (uid, gid)


def test_service_account_is_dedicated_and_mounts_no_token(rendered: Rendered) -> None:
    account = rendered.one("ServiceAccount")
    assert account["automountServiceAccountToken"] is False
    assert rendered.pod_spec["serviceAccountName"] == account["metadata"]["name"]
    assert rendered.pod_spec["automountServiceAccountToken"] is False


def test_resources_are_the_notes_figures(rendered: Rendered) -> None:
    assert rendered.container["resources"] == NOTES_RESOURCES


def test_pods_spread_over_nodes(rendered: Rendered) -> None:
    keys = {c["topologyKey"] for c in rendered.pod_spec["topologySpreadConstraints"]}
    assert "kubernetes.io/hostname" in keys
    if rendered.overlay == "production":
        assert "topology.kubernetes.io/zone" in keys


def test_disruption_budget_lets_one_pod_go_at_a_time(rendered: Rendered) -> None:
    assert rendered.one("PodDisruptionBudget")["spec"]["maxUnavailable"] == 1


def test_prometheus_annotations_point_at_the_metrics_route(rendered: Rendered) -> None:
    annotations = rendered.deployment["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/path"] == "/metrics"
    assert container_port(rendered.container, int(annotations["prometheus.io/port"])) == 5000


def test_change_cause_names_the_image_that_runs(rendered: Rendered) -> None:
    cause = rendered.deployment["metadata"]["annotations"]["kubernetes.io/change-cause"]
    assert rendered.container["image"] in cause


def test_minikube_overlay_is_the_notes_setup(renders: dict[str, Rendered]) -> None:
    rendered = renders["minikube"]
    assert rendered.one("Service")["spec"]["type"] == "NodePort"
    assert rendered.container["image"] == "ml-model:v2"
    assert rendered.container["imagePullPolicy"] == "Never"
    assert all("namespace" not in doc["metadata"] for doc in rendered.docs), "the notes' default namespace"


def test_production_overlay_pulls_a_tagged_registry_image_into_its_namespace(
    renders: dict[str, Rendered],
) -> None:
    rendered = renders["production"]
    assert rendered.one("Service")["spec"]["type"] == "ClusterIP"
    image = rendered.container["image"]
    assert re.fullmatch(r"[a-z0-9.-]+\.[a-z]+/[a-z0-9/._-]+:v\d+(@sha256:[0-9a-f]{64})?", image), image
    assert rendered.container["imagePullPolicy"] == "Always"
    namespace = rendered.one("Namespace")
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    for doc in rendered.docs:
        if doc["kind"] not in CLUSTER_SCOPED:
            assert doc["metadata"]["namespace"] == namespace["metadata"]["name"], doc["kind"]


def test_production_network_policy_lets_in_only_the_service_port(renders: dict[str, Rendered]) -> None:
    policy = renders["production"].one("NetworkPolicy")["spec"]
    assert policy["policyTypes"] == ["Ingress", "Egress"]
    assert policy["ingress"] == [{"ports": [{"protocol": "TCP", "port": 5000}]}]
    assert policy["egress"] == [], "the server makes no outbound connection"


def test_ingress_component_routes_to_the_service_port(renders: dict[str, Rendered]) -> None:
    for variant in ("minikube+components", "production+components"):
        rendered = renders[variant]
        [rule] = rendered.one("Ingress")["spec"]["rules"]
        [path] = rule["http"]["paths"]
        backend = path["backend"]["service"]
        service = rendered.one("Service")
        assert backend["name"] == service["metadata"]["name"]
        assert backend["port"]["name"] in {port["name"] for port in service["spec"]["ports"]}


def test_notes_example_key_is_committed_nowhere() -> None:
    """The notes' Secret holds a literal key; no file that git would take may contain it."""
    files = (
        subprocess.run(
            ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
            cwd=REPO,
            capture_output=True,
            check=True,
        )
        .stdout.decode()
        .split("\0")
    )
    needle = "my-secret-" + "api-key-12345"  # split so that this file does not contain it either
    found = [
        name
        for name in files
        if name and (REPO / name).is_file() and needle in (REPO / name).read_text(errors="replace")
    ]
    assert found == []


def test_committed_secret_template_holds_no_value() -> None:
    example = REPO / "deploy/kubernetes/components/api-key-secret/secret.env.example"
    values = [
        line.partition("=")[2]
        for line in example.read_text().splitlines()
        if line and not line.startswith("#")
    ]
    assert values == [""]


def test_git_ignores_the_real_secret_file() -> None:
    path = "deploy/kubernetes/components/api-key-secret/secret.env"
    result = subprocess.run(["git", "check-ignore", "-q", path], cwd=REPO, check=False)
    assert result.returncode == 0, f"{path} must be git-ignored"
