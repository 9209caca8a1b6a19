"""Grids of training runs: a TOML spec, an engine that runs them on a local process pool or a
Dask cluster with durable results, and a report over the whole grid."""
