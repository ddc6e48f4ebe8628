"""The wire types: every request and answer body mlkube's HTTP API speaks, as msgspec structs.

The server decodes and encodes with them, /openapi.json is generated from them, and the CLI's client
(`kube/smoke.py`, `kube/status.py`) reads answers with them, so the two sides cannot drift apart. Plain
msgspec only: importing them costs the CLI no numpy.

- `simple`: the simple API, `/predict`, `/health`, `/ready` (its request and answer fixed key for key),
  and the error body every route answers with;
- `page`: what the model page reads, `/model` and `/predict/proba`;
- `kserve_v1`: KServe's V1 protocol;
- `open_inference`: the Open Inference Protocol (V2) and its tensors;
- `numbers`: the numeric limits the request schemas and checks share.
"""
