"""The one adapter to a Databricks workspace (databricks-sdk's ``WorkspaceClient``).

Authentication is the SDK's standard chain: ``--profile`` names a
``~/.databrickscfg`` profile, otherwise ``DATABRICKS_HOST`` with its
credentials (token, OAuth client id and secret...) or the default profile.
Everything returned is plain data (dicts as the REST API spells them), so the
logic in :mod:`patronage.deployment` never sees an SDK object. Errors become
:class:`WorkspaceError`, whose message names the call and the API's reason.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import itertools
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from patronage.errors import InputError

T = TypeVar("T")

#: What a location check found.
EXISTS = "exists"
MISSING = "missing"
UNSUPPORTED = "unsupported"  # the workspace does not serve the API that would tell


class WorkspaceError(InputError):
    """A workspace call failed (authentication, permission, not found...)."""


def _call(what: str, fn: Callable[[], T]) -> T:
    from databricks.sdk.errors.base import DatabricksError

    try:
        return fn()
    except DatabricksError as exc:
        first = (str(exc).strip().splitlines() or [""])[0][:300]
        raise WorkspaceError(f"{what}: {type(exc).__name__}: {first}") from None
    except ValueError as exc:  # the SDK's configuration errors (no host, bad profile)
        first = (str(exc).strip().splitlines() or [""])[0][:300]
        raise WorkspaceError(f"{what}: {first}") from None


@dataclasses.dataclass
class Workspace:
    """The calls the commands make, over one authenticated client."""

    client: Any

    @classmethod
    def connect(cls, profile: str | None = None) -> Workspace:
        from databricks.sdk import WorkspaceClient

        return cls(_call("connecting to the workspace", lambda: WorkspaceClient(profile=profile)))

    def current_user(self) -> str:
        me = _call("reading the current user", self.client.current_user.me)
        return str(me.user_name or "")

    def jobs_named(self, name: str) -> list[dict[str, Any]]:
        """Every job whose settings name is exactly ``name``, with full settings."""

        def find() -> list[dict[str, Any]]:
            listed = self.client.jobs.list(name=name, expand_tasks=False)
            ids = [j.job_id for j in listed if j.settings and j.settings.name == name]
            return [self.client.jobs.get(job_id=i).as_dict() for i in ids]

        return _call(f"looking up job '{name}'", find)

    def recent_runs(self, job_id: int, limit: int) -> list[dict[str, Any]]:
        """The job's newest ``limit`` runs, newest first, each with its tasks and repairs."""

        def runs() -> list[dict[str, Any]]:
            listed: Iterator[Any] = self.client.jobs.list_runs(job_id=job_id, limit=limit)
            # Some servers ignore the job filter: keep the job's own runs only.
            own = (r for r in listed if r.job_id == job_id)
            ids = [r.run_id for r in itertools.islice(own, limit * 4)]
            got = [self.get_run(i) for i in ids]
            got.sort(key=lambda r: (r.get("start_time") or 0, r.get("run_id") or 0), reverse=True)
            return got[:limit]

        return _call(f"listing the runs of job {job_id}", runs)

    def get_run(self, run_id: int) -> dict[str, Any]:
        """One run with its tasks (latest attempts) and its repair history."""
        run = _call(
            f"reading run {run_id}",
            lambda: self.client.jobs.get_run(run_id=run_id, include_history=True),
        )
        out: dict[str, Any] = run.as_dict()
        return out

    def repair(
        self, run_id: int, tasks: list[str], latest_repair_id: int | None, timeout: dt.timedelta
    ) -> tuple[int | None, dict[str, Any]]:
        """Re-run ``tasks`` of the run on its latest repair; wait; (repair id, the run after)."""

        def repair() -> tuple[int | None, dict[str, Any]]:
            waiter = self.client.jobs.repair_run(
                run_id=run_id, rerun_tasks=tasks, latest_repair_id=latest_repair_id
            )
            repair_id = getattr(waiter.response, "repair_id", None)
            waiter.result(timeout=timeout)
            return repair_id, self.get_run(run_id)

        return _call(f"repairing run {run_id}", repair)

    def path_state(self, path: str, *, is_file: bool = False) -> tuple[str, str]:
        """(EXISTS|MISSING|UNSUPPORTED, which API or why) for a workspace location."""
        from databricks.sdk.errors import NotFound, NotImplemented
        from databricks.sdk.errors.base import DatabricksError

        files = self.client.files
        if path.startswith("/Volumes/"):
            what = "Files API"
            fn = (lambda: files.get_metadata(path)) if is_file else (
                lambda: files.get_directory_metadata(path))
        elif path.startswith(("/Workspace/", "/Users/", "/Shared/")):
            what, fn = "Workspace API", lambda: self.client.workspace.get_status(path)
        elif path.startswith(("dbfs:/", "/dbfs/")):
            dbfs_path = "/" + path.split(":/", 1)[-1].removeprefix("/dbfs/").lstrip("/")
            what, fn = "DBFS API", lambda: self.client.dbfs.get_status(dbfs_path)
        else:
            return UNSUPPORTED, "not a Volumes, Workspace Files or DBFS path"
        try:
            fn()  # type: ignore[no-untyped-call]
        except NotFound:
            return MISSING, what
        except NotImplemented:
            return UNSUPPORTED, f"the workspace does not serve the {what}"
        except DatabricksError as exc:
            raise WorkspaceError(f"{what} {path}: {type(exc).__name__}: {exc}") from None
        return EXISTS, what

    def volume_exists(self, full_name: str) -> bool:
        from databricks.sdk.errors import NotFound

        try:
            _call(f"reading volume {full_name}", lambda: self.client.volumes.read(full_name))
        except WorkspaceError as exc:
            if isinstance(exc.__context__, NotFound):
                return False
            raise
        return True
