"""`python -m mlkube.server`: start the server without loading the CLI framework.

The container's entry point: typer and its dependencies cost ~0.1 s of start-up, and a new pod should take
traffic as soon as the HPA or a rollout asks for it. `mlkube serve` runs the same function.
"""

from __future__ import annotations

import sys

from mlkube.errors import MlkubeError


def main() -> int:
    from mlkube.server.runner import serve_forever
    from mlkube.settings import load_settings

    try:
        return serve_forever(load_settings())
    except MlkubeError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
