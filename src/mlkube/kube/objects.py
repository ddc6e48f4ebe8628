"""The few fields mlkube reads from `kubectl get ... -o json`, typed. Unknown fields are ignored."""

from __future__ import annotations

from typing import Generic, TypeVar

import msgspec

from mlkube.kube.errors import KubeError

T = TypeVar("T")


class _Object(msgspec.Struct, rename="camel", kw_only=True):
    pass


class OwnerReference(_Object):
    kind: str = ""
    name: str = ""
    uid: str = ""


class Metadata(_Object):
    name: str = ""
    namespace: str = ""
    uid: str = ""
    generation: int = 0
    deletion_timestamp: str | None = None
    labels: dict[str, str] = {}
    annotations: dict[str, str] = {}
    owner_references: list[OwnerReference] = []


class EnvVar(_Object):
    name: str
    value: str | None = None


class NamedRef(_Object):
    name: str = ""


class EnvFromSource(_Object):
    secret_ref: NamedRef | None = None
    config_map_ref: NamedRef | None = None


class KeyToPath(_Object):
    key: str = ""


class SecretVolumeSource(_Object):
    secret_name: str = ""
    items: list[KeyToPath] = []


class Volume(_Object):
    name: str = ""
    secret: SecretVolumeSource | None = None


class Container(_Object):
    name: str
    image: str = ""
    env: list[EnvVar] = []
    env_from: list[EnvFromSource] = []
    image_pull_policy: str = ""


class PodSpec(_Object):
    containers: list[Container] = []
    volumes: list[Volume] = []
    node_name: str = ""

    def container(self, name: str) -> Container | None:
        return next((c for c in self.containers if c.name == name), None)


class PodTemplate(_Object):
    metadata: Metadata = msgspec.field(default_factory=Metadata)
    spec: PodSpec = msgspec.field(default_factory=PodSpec)


class LabelSelector(_Object):
    match_labels: dict[str, str] = {}

    def as_arg(self) -> str:
        """`app=ml-model` for `kubectl get pods -l ...`."""
        return ",".join(f"{key}={value}" for key, value in sorted(self.match_labels.items()))


class Condition(_Object):
    type: str
    status: str = ""
    reason: str = ""
    message: str = ""


class DeploymentSpec(_Object):
    replicas: int | None = None
    paused: bool = False
    selector: LabelSelector = msgspec.field(default_factory=LabelSelector)
    template: PodTemplate = msgspec.field(default_factory=PodTemplate)


class DeploymentStatus(_Object):
    observed_generation: int = 0
    replicas: int = 0
    updated_replicas: int = 0
    ready_replicas: int = 0
    available_replicas: int = 0
    unavailable_replicas: int = 0
    conditions: list[Condition] = []

    def condition(self, kind: str) -> Condition | None:
        return next((c for c in self.conditions if c.type == kind), None)


class Deployment(_Object):
    metadata: Metadata = msgspec.field(default_factory=Metadata)
    spec: DeploymentSpec = msgspec.field(default_factory=DeploymentSpec)
    status: DeploymentStatus = msgspec.field(default_factory=DeploymentStatus)

    @property
    def desired(self) -> int:
        return 1 if self.spec.replicas is None else self.spec.replicas


class ReplicaSetSpec(_Object):
    replicas: int = 0
    template: PodTemplate = msgspec.field(default_factory=PodTemplate)


class ReplicaSetStatus(_Object):
    replicas: int = 0
    ready_replicas: int = 0


class ReplicaSet(_Object):
    metadata: Metadata = msgspec.field(default_factory=Metadata)
    spec: ReplicaSetSpec = msgspec.field(default_factory=ReplicaSetSpec)
    status: ReplicaSetStatus = msgspec.field(default_factory=ReplicaSetStatus)


class ContainerStateWaiting(_Object):
    reason: str = ""
    message: str = ""


class ContainerStateTerminated(_Object):
    reason: str = ""
    exit_code: int = 0


class ContainerState(_Object):
    waiting: ContainerStateWaiting | None = None
    terminated: ContainerStateTerminated | None = None
    running: dict[str, str] | None = None


class ContainerStatus(_Object):
    name: str
    ready: bool = False
    restart_count: int = 0
    image: str = ""
    state: ContainerState = msgspec.field(default_factory=ContainerState)
    last_state: ContainerState = msgspec.field(default_factory=ContainerState)


class PodStatus(_Object):
    phase: str = ""
    conditions: list[Condition] = []
    container_statuses: list[ContainerStatus] = []


class Pod(_Object):
    metadata: Metadata = msgspec.field(default_factory=Metadata)
    spec: PodSpec = msgspec.field(default_factory=PodSpec)
    status: PodStatus = msgspec.field(default_factory=PodStatus)

    @property
    def ready(self) -> bool:
        return any(c.type == "Ready" and c.status == "True" for c in self.status.conditions)

    @property
    def terminating(self) -> bool:
        return self.metadata.deletion_timestamp is not None


class MetricTarget(_Object):
    type: str = ""
    average_utilization: int | None = None


class ResourceMetric(_Object):
    name: str = ""
    target: MetricTarget = msgspec.field(default_factory=MetricTarget)


class MetricSpec(_Object):
    type: str = ""
    resource: ResourceMetric | None = None


class MetricValue(_Object):
    average_utilization: int | None = None


class ResourceMetricStatus(_Object):
    name: str = ""
    current: MetricValue = msgspec.field(default_factory=MetricValue)


class MetricStatus(_Object):
    type: str = ""
    resource: ResourceMetricStatus | None = None


class HpaSpec(_Object):
    min_replicas: int = 1
    max_replicas: int = 0
    metrics: list[MetricSpec] = []


class HpaStatus(_Object):
    current_replicas: int = 0
    desired_replicas: int = 0
    current_metrics: list[MetricStatus] = []


class HorizontalPodAutoscaler(_Object):
    metadata: Metadata = msgspec.field(default_factory=Metadata)
    spec: HpaSpec = msgspec.field(default_factory=HpaSpec)
    status: HpaStatus = msgspec.field(default_factory=HpaStatus)

    def cpu_target(self) -> int | None:
        for metric in self.spec.metrics:
            if metric.resource is not None and metric.resource.name == "cpu":
                return metric.resource.target.average_utilization
        return None

    def cpu_current(self) -> int | None:
        for metric in self.status.current_metrics:
            if metric.resource is not None and metric.resource.name == "cpu":
                return metric.resource.current.average_utilization
        return None


class JobStatus(_Object):
    active: int = 0
    succeeded: int = 0
    failed: int = 0
    conditions: list[Condition] = []


class Job(_Object):
    metadata: Metadata = msgspec.field(default_factory=Metadata)
    status: JobStatus = msgspec.field(default_factory=JobStatus)

    def _condition(self, kind: str) -> Condition | None:
        return next((c for c in self.status.conditions if c.type == kind and c.status == "True"), None)

    @property
    def succeeded(self) -> bool:
        return self._condition("Complete") is not None

    @property
    def failed(self) -> bool:
        return self._condition("Failed") is not None

    def reason(self) -> str:
        failed = self._condition("Failed")
        if failed is None:
            return "not finished"
        return f"{failed.reason}: {failed.message}" if failed.message else failed.reason or "failed"


class ServicePort(_Object):
    port: int
    target_port: int | str | None = None
    node_port: int | None = None
    name: str = ""


class ServiceSpec(_Object):
    type: str = "ClusterIP"
    cluster_ip: str = msgspec.field(default="", name="clusterIP")
    ports: list[ServicePort] = []


class Service(_Object):
    metadata: Metadata = msgspec.field(default_factory=Metadata)
    spec: ServiceSpec = msgspec.field(default_factory=ServiceSpec)


class ObjectList(_Object, Generic[T]):
    items: list[T] = []


def decode(data: str | bytes, kind: type[T]) -> T:
    """Parse kubectl's JSON into `kind`; a shape mlkube cannot read is a KubeError naming it."""
    try:
        return msgspec.json.decode(data, type=kind)
    except msgspec.DecodeError as error:
        raise KubeError(f"unexpected kubectl output for {getattr(kind, '__name__', kind)}: {error}") from None
