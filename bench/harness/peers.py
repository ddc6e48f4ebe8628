"""The servers under test, each with its own environment, model, command and request bodies.

- notes: the notes' `app.py` (Flask development server, scikit-learn, joblib), run as `python app.py`.
- mlserver: MLServer 1.7.1 + mlserver-sklearn serving the same `model.joblib`, V2 inference protocol,
  asking for both `predict` and `predict_proba` (the notes' app computes both too).
- mlkube: this repository, `mlkube train` then `python -m mlkube.server` (the container's entry point,
  what `mlkube serve` runs) with 2 workers and production defaults;
  two variants switch one feature each (access log off, API key on) to price them.
- mlkube-wide: the same server on a second model, a HistGradientBoosting Pipeline on a wider table with
  text columns (`harness/wide.py`), asked by feature name. mlkube only: the notes' app and MLServer's
  sklearn runtime take the Iris rows their setup trains on, and a fair peer for this model would need its
  own pandas-based scoring code (MLServer's sklearn runtime takes a V2 tensor, not named text columns).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path

from harness.wide import TARGET, wide_row, write_wide_csv
from harness.wrk import Request

BENCH_DIR = Path(__file__).resolve().parent.parent
REPO_DIR = BENCH_DIR.parent
PEERS_DIR = BENCH_DIR / "peers"
ENVS_DIR = BENCH_DIR / ".envs"

NOTES_BODY = b'{"features": [5.1, 3.5, 1.4, 0.2]}'
"""The notes' test request, byte for byte."""
_IRIS_ROWS = (
    (5.1, 3.5, 1.4, 0.2),
    (6.2, 2.9, 4.3, 1.3),
    (6.3, 3.3, 6.0, 2.5),
    (4.9, 3.0, 1.4, 0.2),
    (5.7, 2.8, 4.1, 1.3),
    (7.2, 3.6, 6.1, 2.5),
    (5.9, 3.0, 5.1, 1.8),
)
"""Rows of the iris data set, all three classes; batches cycle through them."""
_JSON = (("Content-Type", "application/json"),)
MLKUBE_WORKERS = 2
NOTES_REQUIREMENTS = (PEERS_DIR / "notes" / "requirements.txt").read_text().split()
MLSERVER_REQUIREMENTS = [
    "mlserver==1.7.1",
    "mlserver-sklearn==1.7.1",
    "uvloop==0.21.*",  # MLServer fails to start with uvloop>=0.22 (SeldonIO/MLServer#2286)
    *NOTES_REQUIREMENTS[1:],  # the notes' scikit-learn and joblib: the same model file loads unchanged
]


@dataclass(frozen=True)
class Launch:
    command: list[str]
    env: dict[str, str]
    cwd: Path
    ready_path: str


def batch_rows(size: int) -> list[list[float]]:
    return [list(_IRIS_ROWS[index % len(_IRIS_ROWS)]) for index in range(size)]


def _compact(value: object) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def v2_request(rows: int, headers: tuple[tuple[str, str], ...] = ()) -> Request:
    """An Open Inference Protocol (V2) request asking for `predict` and `predict_proba`, as MLServer needs
    it and mlkube's `/v2/models/iris/infer` takes it (mlkube names its one input `features`)."""
    flat = [value for row in batch_rows(rows) for value in row]
    body = {
        "inputs": [{"name": "features", "shape": [rows, 4], "datatype": "FP64", "data": flat}],
        "outputs": [{"name": "predict"}, {"name": "predict_proba"}],
    }
    return Request("POST", "/v2/models/iris/infer", _compact(body), _JSON + headers, rows)


def clean_env(**extra: str) -> dict[str, str]:
    """A minimal environment, so no LOG_LEVEL or API_KEY of the caller's shell leaks into a server."""
    keep = ("PATH", "HOME", "TMPDIR", "SYSTEMROOT")
    env = {name: os.environ[name] for name in keep if name in os.environ}
    env.update(LANG="C.UTF-8", **extra)
    return env


def ensure_env(name: str, requirements: list[str], log: Path) -> Path:
    """`bench/.envs/<name>` with exactly these requirements, created once and reused (a stamp file)."""
    folder = ENVS_DIR / name
    stamp = folder / ".bench-requirements"
    wanted = "\n".join(requirements)
    if stamp.is_file() and stamp.read_text() == wanted:
        return folder
    shutil.rmtree(folder, ignore_errors=True)
    print(f"  creating {folder.relative_to(REPO_DIR)}: pip install {' '.join(requirements)}", flush=True)
    with log.open("a") as out:
        subprocess.run([sys.executable, "-m", "venv", str(folder)], check=True, stdout=out, stderr=out)
        pip = [str(folder / "bin" / "python"), "-m", "pip", "install", "--quiet", *requirements]
        subprocess.run(pip, check=True, stdout=out, stderr=out)
    stamp.write_text(wanted)
    return folder


def package_versions(python: Path | str, names: list[str]) -> dict[str, str]:
    code = (
        "import importlib.metadata as m, json, sys\n"
        "def v(n):\n"
        "    try: return m.version(n)\n"
        "    except m.PackageNotFoundError: return 'absent'\n"
        f"print(json.dumps({{'python': sys.version.split()[0], **{{n: v(n) for n in {names!r}}}}}))"
    )
    done = subprocess.run([str(python), "-c", code], capture_output=True, text=True, check=True)
    versions: dict[str, str] = json.loads(done.stdout)
    return versions


@dataclass
class Peer(ABC):
    """What every server offers the harness."""

    name: str
    label: str
    versions: dict[str, str] = field(default_factory=dict)

    @abstractmethod
    def setup(self, work: Path, log: Path) -> None:
        """Create the environment and the model; fill `versions`."""

    @abstractmethod
    def launch(self, ports: list[int]) -> Launch:
        """How to start the server on `ports[0]` (more ports for servers that open several)."""

    @abstractmethod
    def single(self) -> Request:
        """The single-row request: the notes' body, or the server's own protocol for one row."""

    def batch(self, rows: int) -> Request | None:
        """None when the server has no batch API (the notes' app scores exactly one row)."""
        return None

    def floor(self) -> Request | None:
        """The same server's cheapest route, for the /predict-versus-floor ratio."""
        return None

    def v2(self) -> Request | None:
        """A single-row V2 inference request, when the server speaks V2 besides its main protocol."""
        return None

    @abstractmethod
    def check(self, answer: dict[str, object]) -> bool:
        """Is this the right answer to the single-row request (the notes' body is a setosa)?"""


@dataclass
class NotesPeer(Peer):
    name: str = "notes"
    label: str = "the notes' app (python app.py, Flask dev server, scikit-learn)"
    folder: Path = Path()
    python: Path = Path()

    def setup(self, work: Path, log: Path) -> None:
        env = ensure_env("notes", NOTES_REQUIREMENTS, log)
        self.python = env / "bin" / "python"
        self.folder = work / "notes"
        self.folder.mkdir(parents=True, exist_ok=True)
        for name in ("app.py", "train_model.py"):
            shutil.copy(PEERS_DIR / "notes" / name, self.folder / name)
        with log.open("a") as out:
            subprocess.run(
                [str(self.python), "train_model.py"], cwd=self.folder, check=True, stdout=out, stderr=out
            )
        self.versions = package_versions(
            self.python, ["flask", "werkzeug", "scikit-learn", "joblib", "numpy", "scipy"]
        )

    def launch(self, ports: list[int]) -> Launch:
        source = (PEERS_DIR / "notes" / "app.py").read_text()
        original = "app.run(host='0.0.0.0', port=5000)"
        if original not in source:
            raise RuntimeError(f"bench/peers/notes/app.py no longer contains {original!r}")
        # the one change to the notes' text: loopback only, a free port
        patched = source.replace(original, f"app.run(host='127.0.0.1', port={ports[0]})")
        (self.folder / "app.py").write_text(patched)
        return Launch([str(self.python), "app.py"], clean_env(), self.folder, "/health")

    def single(self) -> Request:
        return Request("POST", "/predict", NOTES_BODY, _JSON)

    def check(self, answer: dict[str, object]) -> bool:
        return answer.get("class_name") == "setosa" and answer.get("prediction") == 0


@dataclass
class MlserverPeer(Peer):
    name: str = "mlserver"
    label: str = "MLServer 1.7.1 + mlserver-sklearn (V2, predict + predict_proba)"
    models: Path = Path()
    executable: Path = Path()

    def setup(self, work: Path, log: Path) -> None:
        env = ensure_env("mlserver", MLSERVER_REQUIREMENTS, log)
        self.executable = env / "bin" / "mlserver"
        trained = work / "notes" / "model.joblib"
        if not trained.is_file():
            raise RuntimeError("the notes' peer must be set up first: it trains the forest both serve")
        self.models = work / "mlserver"
        model_dir = self.models / "iris"
        model_dir.mkdir(parents=True, exist_ok=True)
        shutil.copy(trained, model_dir / "model.joblib")
        shutil.copy(PEERS_DIR / "mlserver" / "model-settings.json", model_dir / "model-settings.json")
        self.versions = package_versions(
            env / "bin" / "python",
            [
                "mlserver",
                "mlserver-sklearn",
                "scikit-learn",
                "joblib",
                "numpy",
                "fastapi",
                "uvicorn",
                "uvloop",
            ],
        )

    def launch(self, ports: list[int]) -> Launch:
        env = clean_env(
            MLSERVER_HOST="127.0.0.1",
            MLSERVER_HTTP_PORT=str(ports[0]),
            MLSERVER_GRPC_PORT=str(ports[1]),
            MLSERVER_METRICS_PORT=str(ports[2]),
        )
        command = [str(self.executable), "start", str(self.models)]
        return Launch(command, env, self.models, "/v2/models/iris/ready")

    def single(self) -> Request:
        request = self.batch(1)
        assert request is not None
        return request

    def batch(self, rows: int) -> Request | None:
        return v2_request(rows)

    def check(self, answer: dict[str, object]) -> bool:
        outputs = answer.get("outputs")
        if not isinstance(outputs, list):
            return False
        by_name = {output["name"]: output["data"] for output in outputs}
        return by_name.get("predict") == [0] and len(by_name.get("predict_proba", [])) == 3


@dataclass
class MlkubePeer(Peer):
    name: str = "mlkube"
    label: str = "mlkube (granian RSGI, 2 workers, ONNX Runtime; metrics + access log on)"
    extra_env: dict[str, str] = field(default_factory=dict)
    headers: tuple[tuple[str, str], ...] = ()
    workers: int = MLKUBE_WORKERS
    models: Path = Path()

    def setup(self, work: Path, log: Path) -> None:
        self.models = work / "mlkube" / "models"
        if not (self.models / "iris").is_dir():
            command = [sys.executable, "-m", "mlkube", "train", "--model-dir", str(self.models)]
            with log.open("a") as out:
                subprocess.run(command, check=True, stdout=out, stderr=out, env=clean_env())
        self.versions = package_versions(
            sys.executable, ["mlkube", "granian", "onnxruntime", "msgspec", "prometheus-client", "numpy"]
        )

    def launch(self, ports: list[int]) -> Launch:
        env = clean_env(
            MODEL_DIR=str(self.models),
            HOST="127.0.0.1",
            PORT=str(ports[0]),
            WORKERS=str(self.workers),
            **self.extra_env,
        )
        # the container's entry point; `mlkube serve` runs the same function after loading the CLI
        return Launch([sys.executable, "-m", "mlkube.server"], env, self.models.parent, "/ready")

    def single(self) -> Request:
        return Request("POST", "/predict", NOTES_BODY, _JSON + self.headers)

    def batch(self, rows: int) -> Request | None:
        body = _compact({"instances": batch_rows(rows)})
        return Request("POST", "/predict", body, _JSON + self.headers, rows)

    def floor(self) -> Request | None:
        return Request("GET", "/health")

    def v2(self) -> Request | None:
        return v2_request(1, self.headers)

    def check(self, answer: dict[str, object]) -> bool:
        return answer.get("class_name") == "setosa" and answer.get("prediction") == 0


@dataclass
class MlkubeWidePeer(MlkubePeer):
    """mlkube serving the second model: 22 named features (2 of them text), HistGradientBoosting."""

    name: str = "mlkube-wide"
    label: str = "mlkube, HistGradientBoosting Pipeline, 22 named features (2 text)"
    extra_env: dict[str, str] = field(default_factory=lambda: {"MODEL_NAME": "wide"})

    def setup(self, work: Path, log: Path) -> None:
        self.models = work / "mlkube-wide" / "models"
        if not (self.models / "wide").is_dir():
            data = write_wide_csv(work / "wide.csv")
            command = [sys.executable, "-m", "mlkube", "train", "--model-dir", str(self.models)]
            command += ["--data", str(data), "--target", TARGET, "--name", "wide"]
            command += ["--estimator", "hist_gradient_boosting", "--param", "max_iter=50"]
            with log.open("a") as out:
                subprocess.run(command, check=True, stdout=out, stderr=out, env=clean_env())
        self.versions = package_versions(sys.executable, ["mlkube", "onnxruntime", "msgspec", "numpy"])

    def single(self) -> Request:
        return Request("POST", "/predict", _compact({"features": wide_row()}), _JSON + self.headers)

    def batch(self, rows: int) -> Request | None:
        body = _compact({"instances": [wide_row()] * rows})
        return Request("POST", "/predict", body, _JSON + self.headers, rows)

    def v2(self) -> Request | None:
        return None

    def check(self, answer: dict[str, object]) -> bool:
        return answer.get("class_name") in ("low", "mid", "high")


BENCH_API_KEY = "bench-key-0123456789abcdef"  # pragma: allowlist secret


def all_peers() -> list[Peer]:
    return [
        NotesPeer(),
        MlserverPeer(),
        MlkubePeer(),
        MlkubePeer(
            name="mlkube-nolog",
            label="mlkube, access log off (LOG_LEVEL=WARNING)",
            extra_env={"LOG_LEVEL": "WARNING"},
        ),
        MlkubePeer(
            name="mlkube-auth",
            label="mlkube, API key on (X-API-Key)",
            extra_env={"API_KEY": BENCH_API_KEY},
            headers=(("X-API-Key", BENCH_API_KEY),),
        ),
        MlkubeWidePeer(),
    ]
