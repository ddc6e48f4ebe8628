"""Waiting for a rollout: kubectl's rules, the deadline, and why it is stuck."""

from __future__ import annotations

import msgspec
import pytest

from mlkube.kube.errors import RolloutFailed
from mlkube.kube.kubectl import Kubectl
from mlkube.kube.objects import Deployment, Pod
from mlkube.kube.rollout import evaluate, pod_problem, wait_for_rollout
from tests.kube import cluster
from tests.kube.conftest import printer
from tests.kube.fake_kubectl import FakeKubectl, reply_json


def parsed(**fields: object) -> Deployment:
    return msgspec.convert(cluster.deployment(**fields), Deployment)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("fields", "done", "message"),
    [
        ({"generation": 3, "observed": 2}, False, "waiting for the controller to see the new spec"),
        ({"replicas": 3, "updated": 1}, False, "1 of 3 new replicas updated"),
        ({"replicas": 2, "total": 3}, False, "1 old replicas pending termination"),
        ({"replicas": 2, "available": 1}, False, "1 of 2 updated replicas available"),
        ({"paused": True}, False, "the rollout is paused"),
        ({}, True, "successfully rolled out"),
    ],
)
def test_rollout_state_follows_kubectl_rollout_status(
    fields: dict[str, object], done: bool, message: str
) -> None:
    state = evaluate(parsed(**fields))
    assert state.done is done
    assert message in state.message
    assert not state.failed


def test_progress_deadline_exceeded_is_a_failure() -> None:
    condition = {"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded"}
    state = evaluate(parsed(updated=1, conditions=[condition]))
    assert state.failed
    assert "exceeded its progress deadline" in state.message


def progressing(fake: FakeKubectl) -> None:
    fake.on(
        "get",
        "deployment/ml-model-deployment",
        replies=[
            reply_json(cluster.deployment(generation=2, observed=1)),
            reply_json(cluster.deployment(generation=2, updated=1, total=3, available=2)),
            reply_json(cluster.deployment(generation=2, total=3)),
            reply_json(cluster.deployment(generation=2)),
        ],
    )


def test_wait_prints_each_step_until_rolled_out(fake: FakeKubectl) -> None:
    progressing(fake)
    out, printed = printer()
    deployment = wait_for_rollout(Kubectl(out), deadline=30, poll=0.01)
    assert deployment is not None
    text = printed.getvalue()
    steps = [
        "waiting for the controller to see the new spec",
        "1 of 2 new replicas updated",
        "1 old replicas pending termination",
        "successfully rolled out",
    ]
    assert [text.index(step) for step in steps] == sorted(text.index(step) for step in steps)
    assert (
        text.count("$ kubectl get deployment/ml-model-deployment -o json") == 1
    )  # printed once, polled quietly
    assert len(fake.calls()) == 4


def stalled(fake: FakeKubectl, new_pod: dict[str, object]) -> None:
    fake.on("get", "deployment/ml-model-deployment", reply=reply_json(cluster.deployment(updated=1, total=3)))
    fake.on(
        "get",
        "pods",
        "-l",
        "app=ml-model",
        reply=reply_json(cluster.items(cluster.pod("old-1"), cluster.pod("old-2"), new_pod)),
    )


def deployment_polls(fake: FakeKubectl) -> int:
    return sum(1 for call in fake.calls() if call.command[:2] == ["get", "deployment/ml-model-deployment"])


def test_a_rollout_without_progress_fails_at_the_deadline_with_the_pods_reason(fake: FakeKubectl) -> None:
    stalled(fake, cluster.pod("new-1", ready=False, waiting="ImagePullBackOff", message="Back-off pulling"))
    with pytest.raises(RolloutFailed) as raised:
        wait_for_rollout(Kubectl(printer()[0]), deadline=0.5, poll=0.05)
    assert deployment_polls(fake) >= 2
    message = str(raised.value)
    assert message.startswith("not rolled out: no progress for 0.5s (1 of 2 new replicas updated)")
    assert "pod new-1: ImagePullBackOff (Back-off pulling) - the image cannot be pulled" in message
    assert "old-1" not in message


@pytest.mark.parametrize(
    ("reason", "message", "hint"),
    [
        (
            "ErrImageNeverPull",
            'Container image "ml-model:v3" is not present with pull policy of Never',
            "`mlkube image build --minikube --tag ml-model:v3`",
        ),
        (
            "InvalidImageName",
            'Failed to apply default image tag "ml-model:V3!": couldn\'t parse image name',
            "the image reference is malformed",
        ),
    ],
)
def test_an_image_that_can_never_start_fails_at_once(
    fake: FakeKubectl, reason: str, message: str, hint: str
) -> None:
    """The kubelet never gets out of these: no point waiting out a 10-minute deadline."""
    stalled(fake, cluster.pod("new-1", ready=False, waiting=reason, message=message))
    with pytest.raises(RolloutFailed) as raised:
        wait_for_rollout(Kubectl(printer()[0]), deadline=600, poll=0.01)
    assert deployment_polls(fake) == 2, "the first unchanged poll looks at the pods"
    text = str(raised.value)
    assert text.startswith(f"the rollout cannot succeed (1 of 2 new replicas updated): pod new-1: {reason}")
    assert hint in text


def test_the_deadline_counts_time_without_progress_not_the_whole_rollout(fake: FakeKubectl) -> None:
    """20 replicas rolling one at a time: 40 polls 0.1 s apart take 4 s or more (the sleeps alone), past
    the 3 s deadline, yet every poll shows one more updated or available replica (3 s between two polls
    leaves room for a slow machine: each poll is a new process)."""
    steps = [
        cluster.deployment(generation=2, replicas=20, updated=n // 2 + n % 2, available=n // 2, total=21)
        for n in range(1, 40)
    ]
    fake.on(
        "get",
        "deployment/ml-model-deployment",
        replies=[*map(reply_json, steps), reply_json(cluster.deployment(generation=2, replicas=20))],
    )
    deployment = wait_for_rollout(Kubectl(printer()[0]), deadline=3.0, poll=0.1)
    assert deployment is not None
    assert deployment_polls(fake) == 40


def test_progress_deadline_exceeded_from_the_controller_is_trusted(fake: FakeKubectl) -> None:
    condition = {
        "type": "Progressing",
        "status": "False",
        "reason": "ProgressDeadlineExceeded",
        "message": 'ReplicaSet "ml-model-deployment-5c4b9d0002" has timed out progressing.',
    }
    fake.on(
        "get",
        "deployment/ml-model-deployment",
        reply=reply_json(cluster.deployment(updated=1, total=3, conditions=[condition])),
    )
    fake.on("get", "pods", reply=reply_json(cluster.items()))
    with pytest.raises(RolloutFailed, match="exceeded its progress deadline"):
        wait_for_rollout(Kubectl(printer()[0]), deadline=600, poll=0.01)
    assert deployment_polls(fake) == 1


@pytest.mark.parametrize(
    ("pod", "expected"),
    [
        (cluster.pod("p", ready=False, waiting="CrashLoopBackOff"), "kubectl logs p --previous"),
        (
            cluster.pod(
                "p",
                ready=False,
                waiting="CreateContainerConfigError",
                message='secret "ml-model-secret" not found',
            ),
            'secret "ml-model-secret" not found',
        ),
        (cluster.pod("p", ready=False), "readiness probe fails"),
        (cluster.pod("p"), None),
    ],
)
def test_pod_problem_explains_in_one_phrase(pod: dict[str, object], expected: str | None) -> None:
    problem = pod_problem(msgspec.convert(pod, Pod))
    if expected is None:
        assert problem is None
    else:
        assert problem is not None
        assert expected in problem


def test_an_oom_killed_crash_loop_says_memory() -> None:
    crashing = cluster.pod("p", ready=False, waiting="CrashLoopBackOff", restarts=4)
    crashing["status"]["containerStatuses"][0]["lastState"] = {
        "terminated": {"reason": "OOMKilled", "exitCode": 137}
    }
    assert pod_problem(msgspec.convert(crashing, Pod)) == (
        "pod p: CrashLoopBackOff (last exit: OOMKilled, code 137) - "
        "it ran out of memory: raise resources.limits.memory"
    )


def test_unschedulable_pod_quotes_the_scheduler() -> None:
    pending = cluster.pod("p", ready=False, phase="Pending")
    pending["status"]["conditions"] = [
        {
            "type": "PodScheduled",
            "status": "False",
            "reason": "Unschedulable",
            "message": "0/1 nodes: Insufficient cpu.",
        }
    ]
    assert (
        pod_problem(msgspec.convert(pending, Pod))
        == "pod p cannot be scheduled: 0/1 nodes: Insufficient cpu."
    )


def test_dry_run_wait_prints_the_poll_and_returns(fake: FakeKubectl) -> None:
    out, printed = printer()
    assert wait_for_rollout(Kubectl(out, dry_run=True), deadline=10) is None
    assert "kubectl rollout status deployment/ml-model-deployment" in printed.getvalue()
    assert fake.calls() == []
