"""The HTTP prediction server.

One `DataPlane` per worker (`dataplane.py`) behind every route; thin protocol adapters that each take it and
return their routes (`simple_api`, `kserve_v1`, `open_inference` with its codec in `tensors/`, `page`,
`docs`); the RSGI app around them (`app.py`) and the process that forks and drains the workers
(`runner.py`).
"""
