"""Typed settings for every task, parsed from wheel task parameters.

A Databricks ``python_wheel_task`` with ``named_parameters`` receives them as
``--name=value`` arguments; the local runner passes the very same list. One
parser validates them so that a bad deployment fails at the first task with a
message naming the setting, not deep inside a stage.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from collections.abc import Sequence

from patronage.errors import ConfigError

PROCESSING_MODES = ("update", "rebuild")

#: Settings every task needs (bundle variables and job parameters).
PATH_SETTINGS = (
    "inbound_scd_dir",
    "inbound_cg_dir",
    "cg_seed_file",
    "mvi_psa_dir",
    "mvi_person_dir",
    "mvi_institution_dir",
    "export_dir",
    "backup_dir",
)


def _parse_bool(name: str, raw: str) -> bool:
    value = raw.strip().lower()
    if value in ("true", "1", "yes", "y"):
        return True
    if value in ("false", "0", "no", "n", ""):
        return False
    raise ConfigError(f"setting '{name}' must be true or false, got {raw!r}")


def parse_date(name: str, raw: str) -> dt.date:
    """Parse ``YYYY-MM-DD`` with an error naming the setting."""
    try:
        return dt.date.fromisoformat(raw.strip())
    except ValueError:
        raise ConfigError(f"setting '{name}' must be a date YYYY-MM-DD, got {raw!r}") from None


_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_TABLE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*){0,2}$")


@dataclasses.dataclass(frozen=True)
class Settings:
    """Everything a task is told by the job: where things are and what to do."""

    run_id: str
    catalog: str
    schema: str
    inbound_scd_dir: str
    inbound_cg_dir: str
    cg_seed_file: str
    pt_seed_table: str
    pt_delta_table: str
    mvi_psa_dir: str
    mvi_person_dir: str
    mvi_institution_dir: str
    export_dir: str
    backup_dir: str
    processing_mode: str = "update"
    run_date: dt.date | None = None
    job_start_date: dt.date | None = None
    force_dmdc_export: bool = False
    force_edipi_backfill: bool = False
    force_backup: bool = False
    confirm_rebuild: str = ""

    def effective_run_date(self) -> dt.date:
        """The run date: the ``run_date`` parameter, else the job's start date (UTC)."""
        if self.run_date is not None:
            return self.run_date
        if self.job_start_date is not None:
            return self.job_start_date
        return dt.datetime.now(dt.UTC).date()


_REQUIRED = (
    "run_id",
    "catalog",
    "schema",
    "inbound_scd_dir",
    "inbound_cg_dir",
    "cg_seed_file",
    "pt_seed_table",
    "pt_delta_table",
    "mvi_psa_dir",
    "mvi_person_dir",
    "mvi_institution_dir",
    "export_dir",
    "backup_dir",
)


def parse_args(argv: Sequence[str]) -> dict[str, str]:
    """Turn ``--name=value`` (or ``--name value``) arguments into a dict."""
    out: dict[str, str] = {}
    items = list(argv)
    i = 0
    while i < len(items):
        arg = items[i]
        if not arg.startswith("--"):
            raise ConfigError(f"unexpected task argument {arg!r}; expected --name=value")
        if "=" in arg:
            name, value = arg[2:].split("=", 1)
        else:
            name = arg[2:]
            if i + 1 >= len(items):
                raise ConfigError(f"task argument --{name} has no value")
            value = items[i + 1]
            i += 1
        out[name.replace("-", "_")] = value
        i += 1
    return out


def _unresolved(value: str) -> bool:
    # A {{...}} reference Databricks could not resolve arrives verbatim.
    return "{{" in value or "${" in value


def settings_from_params(params: dict[str, str]) -> Settings:
    """Validate raw parameters into :class:`Settings`; unknown names are errors."""
    fields = {f.name for f in dataclasses.fields(Settings)}
    unknown = sorted(set(params) - fields)
    if unknown:
        raise ConfigError(f"unknown setting(s): {', '.join(unknown)}")
    missing = [n for n in _REQUIRED if not params.get(n, "").strip()]
    if missing:
        raise ConfigError(f"missing setting(s): {', '.join(missing)}")
    for name in _REQUIRED:
        if _unresolved(params[name]):
            raise ConfigError(f"setting '{name}' was not resolved: {params[name]!r}")
    for name in ("catalog", "schema"):
        if not _IDENT.match(params[name]):
            raise ConfigError(f"setting '{name}' must be an identifier, got {params[name]!r}")
    for name in ("pt_seed_table", "pt_delta_table"):
        if not _TABLE.match(params[name]):
            raise ConfigError(f"setting '{name}' must be a table name, got {params[name]!r}")

    mode = params.get("processing_mode", "update").strip().lower() or "update"
    if mode not in PROCESSING_MODES:
        raise ConfigError(
            f"setting 'processing_mode' must be one of {', '.join(PROCESSING_MODES)}, got {mode!r}"
        )

    def opt_date(name: str) -> dt.date | None:
        raw = params.get(name, "").strip()
        if not raw or _unresolved(raw):
            return None
        return parse_date(name, raw)

    return Settings(
        run_id=params["run_id"].strip(),
        catalog=params["catalog"].strip(),
        schema=params["schema"].strip(),
        inbound_scd_dir=params["inbound_scd_dir"].strip(),
        inbound_cg_dir=params["inbound_cg_dir"].strip(),
        cg_seed_file=params["cg_seed_file"].strip(),
        pt_seed_table=params["pt_seed_table"].strip(),
        pt_delta_table=params["pt_delta_table"].strip(),
        mvi_psa_dir=params["mvi_psa_dir"].strip(),
        mvi_person_dir=params["mvi_person_dir"].strip(),
        mvi_institution_dir=params["mvi_institution_dir"].strip(),
        export_dir=params["export_dir"].strip(),
        backup_dir=params["backup_dir"].strip(),
        processing_mode=mode,
        run_date=opt_date("run_date"),
        job_start_date=opt_date("job_start_date"),
        force_dmdc_export=_parse_bool("force_dmdc_export", params.get("force_dmdc_export", "")),
        force_edipi_backfill=_parse_bool(
            "force_edipi_backfill", params.get("force_edipi_backfill", "")
        ),
        force_backup=_parse_bool("force_backup", params.get("force_backup", "")),
        confirm_rebuild=params.get("confirm_rebuild", "").strip(),
    )


def settings_from_argv(argv: Sequence[str]) -> Settings:
    return settings_from_params(parse_args(argv))
