"""The Open Inference Protocol (V2) codec: request tensors to the model's float32 rows, scores to outputs.

Converted in whole numpy arrays, never a Python loop over values. The wire types are `mlkube.api.
open_inference`'s; the routes are `server/open_inference.py`'s.

- `decoding`: the request, then its one input checked against the model (name, shape, datatype, range)
  and made a float32 [rows, features] array;
- `binary`: Triton's binary tensor data extension, both ways: an input whose `parameters` give
  `binary_data_size` reads its little-endian values from the bytes after the JSON header
  (`Inference-Header-Content-Length`), and outputs asked for with `binary_data` are answered that way;
- `encoding`: the outputs asked for (`predict`, `predict_proba`, `label`), as JSON or binary.
"""
