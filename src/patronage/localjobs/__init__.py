"""Run a Databricks Asset Bundle's job locally, the way Databricks Jobs would.

Product-agnostic: it reads ``databricks.yml`` and the job YAML it includes
(``bundle``), orders the tasks and applies ``run_if`` (``dag``), resolves the
``{{...}}`` dynamic value references (``references``), keeps run records
(``records``) and executes runs and task-level repairs (``executor``). What a
product must supply (a session, fixture landing, where task values live,
entry points) comes in through :class:`~patronage.localjobs.executor.Hooks`;
nothing here imports the product, so the package can be lifted into another
bundle unchanged.
"""
