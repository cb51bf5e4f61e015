"""``patronage``: run the bundle's job locally, repair it, query its tables.

Sub-commands ``run``, ``repair``, ``task`` and ``sql`` live here; every module
in :mod:`patronage.commands` adds more through ``register(subparsers)``. The
``subparsers`` object handed to them gives every parser it creates the common
options (``--target``, ``--state-dir``, ``--var``, ``--bundle-dir``, ``--job``),
so ``patronage.runner.resolve_settings(args)`` works in any command. A
``register(subparsers, parents)`` with two parameters also receives the common
parent parsers explicitly.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import decimal
import importlib
import inspect
import json
import logging
import pkgutil
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pyspark.errors import AnalysisException

from patronage import reject_policy, runner
from patronage.errors import PatronageError

log = logging.getLogger(__name__)

#: Task values shown on a task's summary line (the rest are in --summary-json).
_HIDDEN_VALUES = {"task_status", "task_error", "task_duration_seconds", *reject_policy.VALUES}
_MAX_SHOWN_VALUES = 5
_FIRST_VALUES = ("run_date", "processing_mode", "triggered", "status", "record_count")


def common_parser() -> argparse.ArgumentParser:
    """Options every sub-command gets."""
    p = argparse.ArgumentParser(add_help=False)
    g = p.add_argument_group("bundle options")
    g.add_argument("--target", default=runner.DEFAULT_TARGET, help="bundle target (default: local)")
    g.add_argument(
        "--state-dir",
        default=runner.DEFAULT_STATE_DIR,
        help="local warehouse, landed inputs and run records (default: .patronage)",
    )
    g.add_argument(
        "--var",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="override a bundle variable (repeatable)",
    )
    g.add_argument(
        "--bundle-dir",
        default=None,
        help="bundle root (default: nearest parent of the current directory with databricks.yml)",
    )
    g.add_argument("--job", default=runner.DEFAULT_JOB, help="job key under resources/")
    return p


def _params_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(add_help=False)
    g = p.add_argument_group("job parameters")
    g.add_argument(
        "--run-date", default=None, metavar="YYYY-MM-DD", help="sets job parameter run_date"
    )
    g.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="set a job parameter (repeatable)",
    )
    return p


class _CommonSubparsers:
    """Wraps argparse's subparsers so every added parser inherits the common options."""

    def __init__(self, subparsers: Any, parents: list[argparse.ArgumentParser]) -> None:
        self._sub = subparsers
        self._parents = parents

    def add_parser(self, name: str, **kwargs: Any) -> argparse.ArgumentParser:
        kwargs["parents"] = [*self._parents, *kwargs.get("parents", [])]
        # A command may redefine a common option; its definition wins.
        kwargs.setdefault("conflict_handler", "resolve")
        parser: argparse.ArgumentParser = self._sub.add_parser(name, **kwargs)
        return parser

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sub, name)


# --------------------------------------------------------------------------
# Output
# --------------------------------------------------------------------------


def _short(value: Any, limit: int = 32) -> str:
    text = runner.format_value(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _key_values(values: dict[str, Any]) -> list[tuple[str, Any]]:
    """The values worth a glance: the run's facts and decisions first, then counts."""

    def rank(item: tuple[str, Any]) -> tuple[int, str]:
        name, value = item
        if name in _FIRST_VALUES:
            return (_FIRST_VALUES.index(name), name)
        if isinstance(value, int) and not isinstance(value, bool):
            return (len(_FIRST_VALUES), name)
        return (len(_FIRST_VALUES) + 1, name)

    items = [(n, v) for n, v in values.items() if n not in _HIDDEN_VALUES]
    return sorted(items, key=rank)[:_MAX_SHOWN_VALUES]


def task_line(key: str, entry: dict[str, Any], values: dict[str, Any] | None = None) -> str:
    """One line per task: key, status, duration, a few published values or the error."""
    status = entry.get("status", runner.NOT_RUN)
    duration = float(entry.get("duration_seconds") or 0.0)
    line = f"{key:<18} {status:<16} {duration:8.1f}s"
    if entry.get("error"):
        return f"{line}  {entry['error']}"
    shown = [f"{name}={_short(v)}" for name, v in _key_values(values or {})]
    return f"{line}  {' '.join(shown)}" if shown else line


def print_result(result: runner.RunResult, order: Sequence[str] | None = None) -> None:
    keys = list(order or result.record["tasks"])
    for key in keys:
        entry = result.record["tasks"].get(key)
        if entry is not None:
            print(task_line(key, entry, result.values.get(key)))
    for line in reject_policy.summary_lines(result.values):
        print(line)
    print(f"run {result.run_id} {result.status}")


def _write_summary(path: str | None, result: runner.RunResult) -> None:
    if not path:
        return
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps(result.summary(), indent=2, sort_keys=True, default=str) + "\n", encoding="utf-8"
    )


def _task_order(result: runner.RunResult) -> list[str]:
    try:
        bundle = runner.load_bundle(
            result.record.get("bundle_dir"),
            result.record["target"],
            result.record.get("variable_overrides") or {},
            result.record.get("state_dir"),
        )
        tasks = runner.job_tasks(bundle.job(result.record["job"]))
        return [t.key for t in runner.topological_order(tasks)]
    except runner.RunnerError:
        return list(result.record["tasks"])


# --------------------------------------------------------------------------
# Commands
# --------------------------------------------------------------------------


def _run(args: argparse.Namespace, **extra: Any) -> runner.RunResult:
    """``runner.run_job`` with the job, bundle and parameter options of ``args``."""
    return runner.run_job(
        job=args.job,
        target=args.target,
        state_dir=args.state_dir,
        variables=runner.parse_assignments(args.var, "--var"),
        params=runner.parse_assignments(args.param, "--param"),
        run_date=args.run_date,
        bundle_dir=args.bundle_dir,
        **extra,
    )


def _report(args: argparse.Namespace, result: runner.RunResult) -> int:
    print_result(result, _task_order(result))
    _write_summary(args.summary_json, result)
    return result.exit_code


def cmd_run(args: argparse.Namespace) -> int:
    return _report(args, _run(args))


def cmd_repair(args: argparse.Namespace) -> int:
    from patronage import deployment

    if deployment.is_workspace_target(args.target):
        from patronage.commands.workspace_repair import repair_workspace_run

        return repair_workspace_run(args)
    result = runner.repair(state_dir=args.state_dir, run_id=args.run_id, bundle_dir=args.bundle_dir)
    return _report(args, result)


def cmd_task(args: argparse.Namespace) -> int:
    result = _run(args, only=[args.task_key], run_id=args.run_id)
    entry = result.record["tasks"][args.task_key]
    print(task_line(args.task_key, entry, result.values.get(args.task_key)))
    print(f"run {result.run_id} task {args.task_key} {entry['status']}")
    return 0 if entry["status"] == runner.SUCCESS else 1


def _json_value(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, bytes | bytearray):
        return value.hex()
    if isinstance(value, dict):
        return {k: _json_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_value(v) for v in value]
    return value


def _text_value(value: Any) -> str:
    if value is None:
        return ""
    value = _json_value(value)
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True)
    return str(value)


def format_rows(columns: list[str], rows: list[dict[str, Any]], fmt: str) -> str:
    """Query output as a table, a JSON array of row objects, or CSV."""
    if fmt == "json":
        return json.dumps([{c: _json_value(r[c]) for c in columns} for r in rows], indent=2)
    if fmt == "csv":
        import io

        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(columns)
        for r in rows:
            writer.writerow(["" if r[c] is None else _text_value(r[c]) for c in columns])
        return buf.getvalue().rstrip("\n")
    cells = [[_text_value(r[c]) if r[c] is not None else "NULL" for c in columns] for r in rows]
    widths = [max([len(c), *(len(row[i]) for row in cells)]) for i, c in enumerate(columns)]
    lines = [
        " | ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)),
        "-+-".join("-" * w for w in widths),
        *(" | ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)) for row in cells),
        f"({len(rows)} row{'s' if len(rows) != 1 else ''})",
    ]
    return "\n".join(lines)


def cmd_sql(args: argparse.Namespace) -> int:
    from patronage.tables import Tables

    settings, spark = runner.resolve_settings(args)
    tables = Tables(spark, settings.catalog, settings.schema)
    tables.ensure_schema()
    spark.catalog.setCurrentCatalog(settings.catalog)
    spark.catalog.setCurrentDatabase(settings.schema)
    # The query is the operator's own text, run as given (no data values pasted in).
    df = spark.sql(args.query)
    columns = list(df.columns)
    rows = [r.asDict(recursive=True) for r in df.collect()]
    print(format_rows(columns, rows, args.format))
    return 0


# --------------------------------------------------------------------------
# Parser
# --------------------------------------------------------------------------


def _register_command_modules(
    sub: _CommonSubparsers, parents: list[argparse.ArgumentParser]
) -> None:
    import patronage.commands as pkg

    for info in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda m: m.name):
        name = f"{pkg.__name__}.{info.name}"
        try:
            module = importlib.import_module(name)
            register = getattr(module, "register", None)
            if register is None:
                continue
            if len(inspect.signature(register).parameters) >= 2:
                register(sub, parents)
            else:
                register(sub)
        except Exception as exc:  # one broken command must not take the CLI down
            print(f"patronage: command module {name} not loaded: {exc}", file=sys.stderr)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="patronage",
        description="Run the Patronage job locally (Spark + Delta) and inspect its tables.",
    )
    parser.add_argument("--log-level", default="INFO", help="logging level (default INFO)")
    common = common_parser()
    params = _params_parser()
    raw_sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    raw_sub.required = True
    sub = _CommonSubparsers(raw_sub, [common])

    p = sub.add_parser(
        "run",
        parents=[params],
        help="run the job as defined in resources/",
        description="Run the job task by task in dependency order with run_if semantics.",
    )
    p.add_argument("--summary-json", metavar="FILE", help="write the run's outcome and task values")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser(
        "repair",
        help="re-run the failed tasks of a run and everything after them",
        description="Task-level repair: same run id, parameters and start time; "
        "succeeded tasks and their values are kept. With a deployed --target, the "
        "workspace run is repaired (on its latest repair) and the command waits for it.",
    )
    p.add_argument("--run-id", default=None, help="run to repair (default: the latest)")
    p.add_argument("--profile", default=None,
                   help="~/.databrickscfg profile for a deployed --target (default: environment)")
    p.add_argument("--timeout-minutes", type=float, default=240.0,
                   help="how long to wait for a workspace repair (default 240)")
    p.add_argument("--summary-json", metavar="FILE", help="write the run's outcome and task values")
    p.set_defaults(func=cmd_repair)

    p = sub.add_parser(
        "task",
        parents=[params],
        help="run one task exactly as its wheel entry point would",
        description="Run one task with its resolved parameters (run_if is not applied).",
    )
    p.add_argument("task_key", help="task_key in the job")
    p.add_argument(
        "--run-id",
        default=None,
        help="join this run (its parameters and values); 'latest' for the latest run",
    )
    p.set_defaults(func=cmd_task)

    p = sub.add_parser(
        "sql",
        parents=[params],
        help="run SQL against the target's tables",
        description="Runs in the product's catalog and schema, so unqualified names work.",
    )
    p.add_argument("query", help="SQL text")
    p.add_argument("--format", choices=("table", "json", "csv"), default="table")
    p.set_defaults(func=cmd_sql)

    _register_command_modules(sub, [common])
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from patronage.task import configure_logging

    parser = build_parser()
    args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    configure_logging()
    level = logging.getLevelName(str(args.log_level).upper())
    if isinstance(level, int):
        logging.getLogger().setLevel(level)
    try:
        return int(args.func(args) or 0)
    except (PatronageError, runner.RunnerError) as exc:
        # Ours: the message says what to fix; no traceback for the operator.
        print(f"patronage: {exc}", file=sys.stderr)
        return 2
    except AnalysisException as exc:  # an operator's SQL that Spark refused
        print(f"patronage: {type(exc).__name__}: {str(exc).splitlines()[0]}", file=sys.stderr)
        return 1

if __name__ == "__main__":
    sys.exit(main())
