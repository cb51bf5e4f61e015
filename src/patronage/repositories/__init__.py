"""The run's bookkeeping: one module per persisted table, the only code that touches it.

``ledger`` owns ``patronage_file_ledger``; ``rejects`` owns
``patronage_rejects``; ``staging`` owns ``patronage_staging_scd`` and
``patronage_staging_cg``; ``task_values`` owns ``patronage_task_values``;
``pipeline_log`` owns ``patronage_pipeline_log``; ``dmdc_checkpoint`` owns
``dmdc_checkpoint``. Stages reach them through ``TaskContext``.
"""
