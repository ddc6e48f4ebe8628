"""`mlkube image build`, `deploy`, `status`, `smoke`, `release`, `history`, `rollback`, `load`.

Thin: each command turns its options into a request and calls `mlkube.kube`, where the work is done.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mlkube.cli._output import friendly_errors
from mlkube.kube import canary as canaries
from mlkube.kube import deploy as deploying
from mlkube.kube import history as histories
from mlkube.kube import image, loadjob, loadtest, names, verify
from mlkube.kube import release as releasing
from mlkube.kube import status as statuses
from mlkube.kube.kubectl import Kubectl, Target
from mlkube.kube.load import parse_duration
from mlkube.kube.output import Output
from mlkube.kube.secret import local_key

ContextOpt = Annotated[
    str | None, typer.Option("--context", help="kubectl context (default: the current one).")
]
NamespaceOpt = Annotated[
    str | None, typer.Option("--namespace", "-n", help="Namespace (default: the context's).")
]
DryRunOpt = Annotated[bool, typer.Option("--dry-run", help="Print the commands without running anything.")]
UrlOpt = Annotated[
    str | None, typer.Option(help="Use this URL instead of finding the Service's (minikube or port-forward).")
]
KeyFileOpt = Annotated[
    Path | None,
    typer.Option(
        help="File with the API key (else $MLKUBE_API_KEY, else the cluster's Secret).", dir_okay=False
    ),
]
TimeoutOpt = Annotated[
    float,
    typer.Option(
        "--timeout",
        parser=parse_duration,
        help="Fail a rollout that makes no progress for this long, or a smoke test not passing by then.",
        show_default="180s",
    ),
]
PollOpt = Annotated[
    float,
    typer.Option("--poll", parser=parse_duration, help="How often to check the rollout.", show_default="1s"),
]
NoSmokeOpt = Annotated[bool, typer.Option("--no-smoke", help="Skip the smoke test after the rollout.")]
Sha256Opt = Annotated[
    str | None,
    typer.Option(
        "--model-sha256",
        help="Pin the bundle: its digest (`mlkube models show`) as MODEL_SHA256 in the ConfigMap.",
    ),
]


def _kubectl(context: str | None, namespace: str | None, dry_run: bool = False) -> Kubectl:
    return Kubectl(Output(), Target(context, namespace), dry_run=dry_run)


def build(
    tag: Annotated[str, typer.Option(help="Image name and tag.")] = "ml-model:v2",
    minikube: Annotated[
        bool, typer.Option("--minikube", help="Build into minikube's Docker daemon.")
    ] = False,
    kind: Annotated[bool, typer.Option("--kind", help="Then load the image into a kind cluster.")] = False,
    kind_cluster: Annotated[str, typer.Option(help="kind cluster name.")] = "kind",
    profile: Annotated[str, typer.Option(help="minikube profile.")] = "minikube",
    build_context: Annotated[Path, typer.Option(help="Build context folder.")] = Path(),
    file: Annotated[
        Path | None, typer.Option("--file", "-f", help="Dockerfile (default: <context>/Dockerfile).")
    ] = None,
    build_arg: Annotated[list[str] | None, typer.Option(help="KEY=VALUE, repeatable.")] = None,
    engine: Annotated[str | None, typer.Option(help="docker or podman (default: whichever exists).")] = None,
    bundle: Annotated[
        Path | None, typer.Option(help="Ship this bundle folder (inside the context) instead of training.")
    ] = None,
    network: Annotated[
        str | None, typer.Option(help="Network of the build's RUN steps (host: engines without a bridge).")
    ] = None,
    dry_run: DryRunOpt = False,
) -> None:
    """Build the image with docker or podman: locally, into minikube (--minikube) or kind (--kind)."""
    if minikube and kind:
        raise typer.BadParameter("--minikube and --kind exclude each other")
    into = "minikube" if minikube else "kind" if kind else "local"
    request = image.BuildRequest(
        tag, build_context, file, build_arg or [], into, profile, kind_cluster, engine, bundle, network
    )
    with friendly_errors():
        image.build_image(Output(), request, dry_run=dry_run)


def deploy(
    overlay: Annotated[
        str, typer.Option(help="Overlay under <manifests>/overlays (minikube, production).")
    ] = "minikube",
    manifests: Annotated[Path, typer.Option(help="The kustomize tree.")] = Path(names.MANIFESTS),
    api_key_file: KeyFileOpt = None,
    timeout: TimeoutOpt = 180.0,
    poll: PollOpt = 1.0,
    url: UrlOpt = None,
    no_smoke: NoSmokeOpt = False,
    force: Annotated[
        bool,
        typer.Option(
            "--force", help="Apply even when the cluster runs another image than the overlay's (a release)."
        ),
    ] = False,
    model_sha256: Sha256Opt = None,
    context: ContextOpt = None,
    namespace: NamespaceOpt = None,
    dry_run: DryRunOpt = False,
) -> None:
    """Apply the overlay (creating the API-key Secret if missing), wait for the rollout, smoke-test it."""
    request = deploying.DeployRequest(
        overlay, manifests, api_key_file, timeout, poll, not no_smoke, url, force, model_sha256
    )
    with friendly_errors():
        deploying.deploy(_kubectl(context, namespace, dry_run), request)


def status(
    versions: Annotated[
        bool, typer.Option(help="Ask each ready pod its model version (port-forward).")
    ] = True,
    context: ContextOpt = None,
    namespace: NamespaceOpt = None,
) -> None:
    """Deployment, pods (ready, restarts, node, model version), HPA and the Service's URL."""
    with friendly_errors():
        statuses.status(_kubectl(context, namespace).pinned(), versions=versions)


def smoke(
    url: UrlOpt = None,
    expect_version: Annotated[str | None, typer.Option(help="Fail unless the service reports this.")] = None,
    api_key_file: KeyFileOpt = None,
    context: ContextOpt = None,
    namespace: NamespaceOpt = None,
) -> None:
    """Check /ready, the notes' /predict payload and a batch; exit 0 only when every check passes."""
    with friendly_errors():
        kubectl, key = _kubectl(context, namespace), local_key(api_key_file)
        verify.smoke_service(kubectl, url=url, api_key=key, expect_version=expect_version)


def _steps(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise typer.BadParameter(f"not a list of percentages: {text!r} (example: 10,25,50)") from None


def release(
    image_ref: Annotated[str, typer.Option("--image", help="The new image, e.g. ml-model:v3.")],
    model_version: Annotated[
        str | None, typer.Option(help="Version to report (default: the image tag).")
    ] = None,
    api_key_file: KeyFileOpt = None,
    timeout: TimeoutOpt = 180.0,
    poll: PollOpt = 1.0,
    url: UrlOpt = None,
    no_smoke: NoSmokeOpt = False,
    model_sha256: Sha256Opt = None,
    canary_percent: Annotated[
        float | None,
        typer.Option(
            "--canary",
            min=0,
            max=100,
            help="First run the image as a canary Deployment with this share of the pods (at most), "
            "judged by the pods' metrics, then promote it or abort.",
            rich_help_panel="Canary",
        ),
    ] = None,
    steps: Annotated[
        str,
        typer.Option(help="Canary shares on the way, in %.", rich_help_panel="Canary"),
    ] = "10,25,50",
    analysis: Annotated[
        float | None,
        typer.Option(
            parser=parse_duration,
            help="How long each canary step is judged (default: one check).",
            rich_help_panel="Canary",
        ),
    ] = None,
    interval: Annotated[
        float,
        typer.Option(
            parser=parse_duration, help="Time between checks.", show_default="1m", rich_help_panel="Canary"
        ),
    ] = 60.0,
    max_failures: Annotated[
        int, typer.Option(min=1, help="Failed checks that abort.", rich_help_panel="Canary")
    ] = 2,
    min_success: Annotated[
        float,
        typer.Option(
            min=0, max=1, help="Least share of non-5xx prediction answers.", rich_help_panel="Canary"
        ),
    ] = 0.99,
    max_p99: Annotated[
        float,
        typer.Option(
            parser=parse_duration,
            help="Highest p99 latency of the canary.",
            show_default="500ms",
            rich_help_panel="Canary",
        ),
    ] = 0.5,
    max_p99_ratio: Annotated[
        float,
        typer.Option(min=1, help="Highest canary p99 over the stable pods' p99.", rich_help_panel="Canary"),
    ] = 1.5,
    latency_floor: Annotated[
        float,
        typer.Option(
            parser=parse_duration,
            help="p99 below which the ratio is not judged (bucket resolution and noise).",
            show_default="50ms",
            rich_help_panel="Canary",
        ),
    ] = 0.05,
    max_psi: Annotated[
        float,
        typer.Option(
            min=0, help="Highest PSI of the class shares, canary against stable.", rich_help_panel="Canary"
        ),
    ] = 0.2,
    min_requests: Annotated[
        int,
        typer.Option(
            min=1,
            help="Prediction requests a side needs in a check; fewer hold the step.",
            rich_help_panel="Canary",
        ),
    ] = 20,
    context: ContextOpt = None,
    namespace: NamespaceOpt = None,
    dry_run: DryRunOpt = False,
) -> None:
    """Roll out a new image; if it stalls or fails the smoke test, undo it and exit non-zero saying why.
    With --canary, first run it beside the stable pods and compare their metrics."""
    checks = releasing.Checks(timeout, poll, url, api_key_file, not no_smoke, model_sha256)
    kubectl = _kubectl(context, namespace, dry_run)
    if canary_percent is None:
        if analysis is not None or steps != "10,25,50" or interval != 60.0:
            raise typer.BadParameter(
                "--analysis, --steps and --interval judge a canary: add --canary PERCENT"
            )
        with friendly_errors():
            releasing.release(kubectl, image_ref, model_version, checks)
        return
    thresholds = canaries.Thresholds(
        min_success, max_p99, max_p99_ratio, latency_floor, max_psi, min_requests
    )
    options = canaries.CanaryOptions(
        canary_percent, _steps(steps), analysis, interval, max_failures, thresholds
    )
    with friendly_errors():
        canaries.release_canary(kubectl, image_ref, model_version, checks, options)


def history(context: ContextOpt = None, namespace: NamespaceOpt = None) -> None:
    """The Deployment's revisions with image, model version and change-cause."""
    with friendly_errors():
        kubectl = _kubectl(context, namespace).pinned()
        histories.print_history(kubectl.out, histories.revisions(kubectl))


def rollback(
    to: Annotated[
        int | None, typer.Option("--to", min=1, help="Revision to go back to (default: the previous).")
    ] = None,
    api_key_file: KeyFileOpt = None,
    timeout: TimeoutOpt = 180.0,
    poll: PollOpt = 1.0,
    url: UrlOpt = None,
    no_smoke: NoSmokeOpt = False,
    context: ContextOpt = None,
    namespace: NamespaceOpt = None,
    dry_run: DryRunOpt = False,
) -> None:
    """`kubectl rollout undo`, then wait for the rollout and check the version that revision serves."""
    checks = releasing.Checks(timeout, poll, url, api_key_file, not no_smoke)
    with friendly_errors():
        releasing.rollback(_kubectl(context, namespace, dry_run), to, checks)


def load(
    rps: Annotated[float, typer.Option(min=0.1, help="Requests per second to send.")] = 20.0,
    duration: Annotated[
        float, typer.Option(parser=parse_duration, help="How long (60s, 2m).", show_default="60s")
    ] = 60.0,
    url: UrlOpt = None,
    api_key_file: KeyFileOpt = None,
    concurrency: Annotated[int, typer.Option(min=1, help="Most requests in flight (connections).")] = 64,
    every: Annotated[
        float, typer.Option(parser=parse_duration, help="Print a line this often.", show_default="5s")
    ] = 5.0,
    watch: Annotated[bool, typer.Option(help="Follow the replica count (needs a cluster).")] = True,
    max_errors: Annotated[
        float, typer.Option(min=0, max=1, help="Failed share that makes the exit code 1.")
    ] = 0.01,
    in_cluster: Annotated[
        bool,
        typer.Option(
            "--in-cluster",
            help="Run the load as a Job in the cluster, against the Service (reaches every pod).",
        ),
    ] = False,
    context: ContextOpt = None,
    namespace: NamespaceOpt = None,
    dry_run: DryRunOpt = False,
) -> None:
    """Steady load at --rps for --duration: achieved rate, latency percentiles, errors, replica changes."""
    if in_cluster:
        if url is not None or api_key_file is not None:
            raise typer.BadParameter(
                "--in-cluster targets the Service with the cluster's key: no --url/--api-key-file"
            )
        command = loadjob.load_command(rps, duration, every, concurrency, max_errors)
        with friendly_errors():
            loadjob.run_in_cluster(
                _kubectl(context, namespace, dry_run), command, duration, watch=watch, watch_every=every
            )
        return
    request = loadtest.LoadRequest(
        rps,
        duration,
        url,
        api_key_file,
        concurrency,
        tick=every,
        watch=watch,
        watch_every=every,
        max_error_ratio=max_errors,
    )
    with friendly_errors():
        loadtest.load_test(_kubectl(context, namespace, dry_run), request)


image_app = typer.Typer(help="Container images.", no_args_is_help=True)
image_app.command("build")(build)


def register(app: typer.Typer) -> None:
    app.add_typer(image_app, name="image")
    for command in (deploy, status, smoke, release, history, rollback, load):
        app.command()(command)
