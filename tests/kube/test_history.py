"""`mlkube history` and `mlkube rollback [--to N]`: revisions from the Deployment's ReplicaSets."""

from __future__ import annotations

import pytest

from tests.kube import cluster
from tests.kube.conftest import PINNED, current_context, host_port, run_cli
from tests.kube.fake_kubectl import FakeKubectl, reply_json
from tests.support import RunningServer

CAUSE_V3 = "mlkube release ml-model:v3 (model v3)"


def three_revisions(fake: FakeKubectl) -> None:
    current_context(fake)
    fake.on(
        "get",
        "deployment/ml-model-deployment",
        phase="start",
        reply=reply_json(cluster.deployment(image="ml-model:v3", version="v3", revision=3)),
    )
    fake.on(
        "get",
        "replicasets",
        "-l",
        "app=ml-model",
        phase="start",
        reply=reply_json(
            cluster.items(
                cluster.replicaset(3, "ml-model:v3", version="v3", cause=CAUSE_V3, replicas=2, ready=2),
                cluster.replicaset(1, "ml-model:v1", version="v1"),
                cluster.replicaset(
                    2, "ml-model:v2", version="v2", cause="mlkube release ml-model:v2 (model v2)"
                ),
                cluster.replicaset(1, "other:v9", owner="uid-of-another-deployment"),
            )
        ),
    )


def restored(fake: FakeKubectl, server: RunningServer, *, template_of: int) -> None:
    """After `kubectl rollout undo`: revision 4 is the old ReplicaSet's template, its two pods serve."""
    fake.on(
        "get",
        "deployment/ml-model-deployment",
        phase="undone",
        reply=reply_json(cluster.deployment(revision=4)),
    )
    fake.on(
        "get",
        "replicasets",
        phase="undone",
        reply=reply_json(cluster.items(cluster.replicaset(4, "ml-model:v1", template_of=template_of))),
    )
    fake.on(
        "get",
        "pods",
        phase="undone",
        reply=reply_json(
            cluster.items(
                cluster.pod("ml-model-deployment-back-a", revision=template_of),
                cluster.pod("ml-model-deployment-back-b", revision=template_of),
            )
        ),
    )
    fake.on("get", "secret", reply={"stdout": ""})
    fake.on("port-forward", reply={"forward_to": host_port(server)})


def test_history_lists_revisions_with_image_model_and_cause(fake: FakeKubectl) -> None:
    three_revisions(fake)
    result = run_cli("history")
    assert result.exit_code == 0, result.output
    rows = [line.split() for line in result.stdout.splitlines() if line[:1].isdigit()]
    assert [row[:4] for row in rows] == [
        ["1", "ml-model:v1", "v1", "0/0"],
        ["2", "ml-model:v2", "v2", "0/0"],
        ["3", "*", "ml-model:v3", "v3"],
    ]
    assert CAUSE_V3 in result.stdout
    assert "other:v9" not in result.stdout
    assert f"$ {PINNED} get replicasets -l app=ml-model -o json" in result.stdout


def test_history_reads_the_model_version_from_the_annotation_release_sets(fake: FakeKubectl) -> None:
    """`mlkube release` annotates the Deployment; the controller copies the annotation onto the revision's
    ReplicaSet. A revision made by a plain `kubectl set image` has none: its model version is unknown."""
    current_context(fake)
    fake.on("get", "deployment/ml-model-deployment", reply=reply_json(cluster.deployment(revision=2)))
    fake.on(
        "get",
        "replicasets",
        reply=reply_json(
            cluster.items(
                cluster.replicaset(1, "ml-model:v1", version="v1", cause=CAUSE_V3),
                cluster.replicaset(2, "ml-model:v2", cause="kubectl set image"),
            )
        ),
    )
    result = run_cli("history")
    assert result.exit_code == 0, result.output
    rows = [line.split()[:4] for line in result.stdout.splitlines() if line[:1].isdigit()]
    assert rows == [["1", "ml-model:v1", "v1", "0/0"], ["2", "*", "ml-model:v2", "-"]]


def test_rollback_goes_to_the_previous_revision_and_checks_its_version(
    fake: FakeKubectl, server_v1: RunningServer
) -> None:
    three_revisions(fake)
    # the "previous" revision reports v2; the real server reports v1, so point --to at revision 1
    fake.on(
        "rollout",
        "undo",
        reply={"stdout": "deployment.apps/ml-model-deployment rolled back\n"},
        then="undone",
    )
    restored(fake, server_v1, template_of=1)
    result = run_cli("rollback", "--to", "1", "--poll", "0.01")
    assert result.exit_code == 0, result.output
    assert f"{PINNED} rollout undo deployment/ml-model-deployment --to-revision=1" in fake.lines()
    assert "rolling back to revision 1: ml-model:v1 (model v1)" in result.stdout
    assert "✓ reported version: v1 as expected" in result.stdout


def test_rollback_without_to_uses_the_previous_revision_and_fails_on_its_version(
    fake: FakeKubectl, server_v1: RunningServer
) -> None:
    three_revisions(fake)
    fake.on("rollout", "undo", reply={"stdout": "rolled back\n"}, then="undone")
    restored(fake, server_v1, template_of=2)
    result = run_cli("rollback", "--poll", "0.01")
    assert f"{PINNED} rollout undo deployment/ml-model-deployment" in fake.lines()  # no --to-revision
    assert "rolling back to revision 2: ml-model:v2 (model v2)" in result.stdout
    assert result.exit_code == 1
    assert "reported version: 'v1', expected 'v2'" in result.stderr


@pytest.mark.parametrize(
    ("args", "message"), [(["--to", "7"], "no revision 7 of ml-model-deployment (revisions kept: 1, 2, 3)")]
)
def test_rollback_to_an_unknown_revision_lists_the_kept_ones(
    fake: FakeKubectl, args: list[str], message: str
) -> None:
    three_revisions(fake)
    result = run_cli("rollback", *args)
    assert result.exit_code == 1
    assert result.stderr.strip() == f"error: {message}"
    assert not any("undo" in line for line in fake.lines())


def test_rollback_with_a_single_revision_has_nothing_to_go_back_to(fake: FakeKubectl) -> None:
    current_context(fake)
    fake.on("get", "deployment/ml-model-deployment", reply=reply_json(cluster.deployment(revision=1)))
    fake.on("get", "replicasets", reply=reply_json(cluster.items(cluster.replicaset(1, "ml-model:v2"))))
    result = run_cli("rollback")
    assert result.exit_code == 1
    assert "nothing to roll back to" in result.stderr
