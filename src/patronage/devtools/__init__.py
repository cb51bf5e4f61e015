"""Developer tooling: the benchmark, the synthetic-data generator and fixture landing.

Reached only from the CLI (``patronage bench``, ``patronage generate``) and
the local runner's fixture hook; no stage imports this package, so a job
task never loads it.
"""
