"""Ingest of the inbound CSV files: one template the SCD and CG stages configure.

``csv_files`` reads and checks the files, ``row_rules`` holds the row-level
building blocks (rules, rejects, version columns) and ``template`` runs an
ingest end to end from a stage's :class:`~patronage.ingest.template.IngestSpec`.
"""
