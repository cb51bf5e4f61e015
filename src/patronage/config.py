"""The job's settings, declared once: fields, required/optional, wheel parameters.

A Databricks ``python_wheel_task`` with ``named_parameters`` receives them as
``--name=value`` arguments; the local runner passes the very same list. Each
field of :class:`Settings` says where its value comes from in the bundle
(``source``, the ``named_parameters`` value every wheel task must carry) and
how it is checked; :func:`named_parameters` and the required/optional split
are derived from those fields, and a test holds every job's YAML to them. One
parser validates the arguments so that a bad deployment fails at the first
task with a message naming the setting, not deep inside a stage.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from collections.abc import Callable, Sequence
from typing import Any

from patronage import pt_sources
from patronage.errors import ConfigError

PROCESSING_MODES = ("update", "rebuild")
#: What finalize does when the reject policy fires (patronage.reject_policy).
REJECT_POLICIES = ("fail", "warn")

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

#: ``parse(name, raw)``: the typed value of a setting, or a ConfigError naming it.
Parser = Callable[[str, str], Any]


def _text(name: str, raw: str) -> str:
    return raw.strip()


def _identifier(name: str, raw: str) -> str:
    if not _IDENT.match(raw):
        raise ConfigError(f"setting '{name}' must be an identifier, got {raw!r}")
    return raw.strip()


def _optional_identifier(name: str, raw: str) -> str:
    value = raw.strip()
    return _identifier(name, value) if value else ""


def _mode(name: str, raw: str) -> str:
    mode = raw.strip().lower() or "update"
    if mode not in PROCESSING_MODES:
        raise ConfigError(
            f"setting '{name}' must be one of {', '.join(PROCESSING_MODES)}, got {mode!r}"
        )
    return mode


def _policy(name: str, raw: str) -> str:
    value = raw.strip().lower()
    if value not in REJECT_POLICIES:
        raise ConfigError(
            f"setting '{name}' must be one of {', '.join(REJECT_POLICIES)}, got {raw!r}"
        )
    return value


def _share(name: str, raw: str) -> float:
    try:
        value = float(raw.strip())
    except ValueError:
        value = -1.0
    if not 0.0 <= value <= 1.0:
        raise ConfigError(f"setting '{name}' must be a share from 0 to 1 (0.01 = 1%), got {raw!r}")
    return value


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


def _optional_date(name: str, raw: str) -> dt.date | None:
    value = raw.strip()
    if not value or _unresolved(value):
        return None
    return parse_date(name, value)


def _unresolved(value: str) -> bool:
    # A {{...}} reference Databricks could not resolve arrives verbatim.
    return "{{" in value or "${" in value


def _variable(parse: Parser = _text) -> Any:
    """A required setting taken from the bundle variable of the same name."""
    return dataclasses.field(metadata={"source": "var", "parse": parse})


def _tunable(parse: Parser, default: Any) -> Any:
    """A setting from the bundle variable of the same name, which has a default."""
    return dataclasses.field(default=default, metadata={"source": "var", "parse": parse})


def _reference(reference: str, parse: Parser = _text, default: Any = dataclasses.MISSING) -> Any:
    """A setting taken from a ``{{...}}`` dynamic value reference; optional with a default."""
    return dataclasses.field(
        default=default, metadata={"source": "{{" + reference + "}}", "parse": parse}
    )


def _job_parameter(parse: Parser, default: Any) -> Any:
    """An optional setting taken from the job parameter of the same name."""
    return dataclasses.field(default=default, metadata={"source": "param", "parse": parse})


@dataclasses.dataclass(frozen=True)
class Settings:
    """Everything a task is told by the job: where things are and what to do."""

    run_id: str = _reference("job.run_id")
    catalog: str = _variable(_identifier)
    schema: str = _variable(_identifier)
    inbound_scd_dir: str = _variable()
    inbound_cg_dir: str = _variable()
    cg_seed_file: str = _variable()
    pt_seed_table: str = _variable(pt_sources.parse)
    pt_delta_table: str = _variable(pt_sources.parse)
    mvi_psa_dir: str = _variable()
    mvi_person_dir: str = _variable()
    mvi_institution_dir: str = _variable()
    export_dir: str = _variable()
    backup_dir: str = _variable()
    reject_policy: str = _tunable(_policy, "fail")
    reject_max_row_share: float = _tunable(_share, 0.01)
    reject_max_unresolved_share: float = _tunable(_share, 0.05)
    #: Schema of the operators' views (patronage.ops_views); empty: no views.
    ops_schema: str = _tunable(_optional_identifier, "")
    processing_mode: str = _job_parameter(_mode, "update")
    run_date: dt.date | None = _job_parameter(_optional_date, None)
    job_start_date: dt.date | None = _reference("job.start_time.iso_date", _optional_date, None)
    force_dmdc_export: bool = _job_parameter(_parse_bool, False)
    force_edipi_backfill: bool = _job_parameter(_parse_bool, False)
    force_backup: bool = _job_parameter(_parse_bool, False)
    confirm_rebuild: str = _job_parameter(_text, "")

    def effective_run_date(self) -> dt.date:
        """The run date: the ``run_date`` parameter, else the job's start date (UTC)."""
        if self.run_date is not None:
            return self.run_date
        if self.job_start_date is not None:
            return self.job_start_date
        return dt.datetime.now(dt.UTC).date()


_FIELDS = dataclasses.fields(Settings)
#: Settings without a default: every task fails fast when one is missing.
REQUIRED = tuple(
    f.name
    for f in _FIELDS
    if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
)


def named_parameters() -> dict[str, str]:
    """The ``named_parameters`` every wheel task of every job must carry, in field order."""
    out: dict[str, str] = {}
    for f in _FIELDS:
        source = f.metadata["source"]
        if source == "var":
            out[f.name] = "${var." + f.name + "}"
        elif source == "param":
            out[f.name] = "{{job.parameters." + f.name + "}}"
        else:
            out[f.name] = source
    return out


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


def settings_from_params(params: dict[str, str]) -> Settings:
    """Validate raw parameters into :class:`Settings`; unknown names are errors."""
    unknown = sorted(set(params) - {f.name for f in _FIELDS})
    if unknown:
        raise ConfigError(f"unknown setting(s): {', '.join(unknown)}")
    missing = [n for n in REQUIRED if not params.get(n, "").strip()]
    if missing:
        raise ConfigError(f"missing setting(s): {', '.join(missing)}")
    for name in REQUIRED:
        if _unresolved(params[name]):
            raise ConfigError(f"setting '{name}' was not resolved: {params[name]!r}")
    values = {
        f.name: (
            f.default
            if not params.get(f.name, "").strip() and f.default is not dataclasses.MISSING
            else f.metadata["parse"](f.name, params.get(f.name, ""))
        )
        for f in _FIELDS
    }
    return Settings(**values)


def settings_from_argv(argv: Sequence[str]) -> Settings:
    return settings_from_params(parse_args(argv))
