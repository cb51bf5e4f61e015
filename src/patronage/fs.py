"""The file-system port: list, read and write files wherever they live.

Configuration may name local paths, ``dbfs:/...`` or ``/Volumes/...``. Stages
only see :class:`FileSystem`; :func:`filesystem_for` picks the adapter. On
Databricks, ``/Volumes`` and ``/dbfs`` are FUSE mounts, so plain file I/O works
there as it does locally; ``dbfs:/`` URIs are mapped to ``/dbfs/`` and listed
through ``dbutils.fs`` where the FUSE mount is not available.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import uuid
from pathlib import Path
from typing import Any

from patronage.errors import FileSystemError


@dataclasses.dataclass(frozen=True, order=True)
class FileInfo:
    """One listed file. ``modification_time`` is UTC, truncated to microseconds."""

    modification_time: dt.datetime
    path: str
    name: str
    size: int


def _utc_from_ns(ns: int) -> dt.datetime:
    # Spark timestamps hold microseconds: truncate so comparisons agree.
    return dt.datetime.fromtimestamp(ns // 1000 / 1_000_000, tz=dt.UTC).replace(tzinfo=None)


def to_local_path(path: str) -> str:
    """Map a ``dbfs:/x`` URI to its FUSE path ``/dbfs/x``; leave others alone."""
    if path.startswith("dbfs:/"):
        return "/dbfs/" + path[len("dbfs:/"):].lstrip("/")
    if path.startswith("file:"):
        return path[len("file:"):]
    return path


def to_spark_path(path: str) -> str:
    """The form Spark readers take: ``dbfs:/`` stays, a local path is absolute."""
    if path.startswith(("dbfs:/", "/Volumes/", "s3:", "abfss:", "gs:")):
        return path
    return Path(to_local_path(path)).resolve().as_posix()


class FileSystem:
    """Plain-file adapter; correct for local paths, ``/Volumes`` and ``/dbfs``."""

    def list_files(self, directory: str) -> list[FileInfo]:
        """Files directly in ``directory`` (not recursive), unsorted.

        Raises :class:`FileSystemError` when the directory is missing or
        unreadable. A single entry that cannot be stat-ed is returned with
        ``size = -1`` so the caller can record why.
        """
        local = to_local_path(directory)
        try:
            entries = list(os.scandir(local))
        except FileNotFoundError:
            raise FileSystemError(f"directory does not exist: {directory}") from None
        except NotADirectoryError:
            raise FileSystemError(f"not a directory: {directory}") from None
        except PermissionError:
            raise FileSystemError(f"directory is not readable: {directory}") from None
        out = []
        for entry in entries:
            try:
                if not entry.is_file():
                    continue
                st = entry.stat()
                out.append(
                    FileInfo(_utc_from_ns(st.st_mtime_ns), self._join(directory, entry.name),
                             entry.name, st.st_size)
                )
            except OSError:
                out.append(FileInfo(dt.datetime(1970, 1, 1), self._join(directory, entry.name),
                                    entry.name, -1))
        return out

    @staticmethod
    def _join(directory: str, name: str) -> str:
        return directory.rstrip("/") + "/" + name

    def exists(self, path: str) -> bool:
        return os.path.exists(to_local_path(path))

    def is_dir(self, path: str) -> bool:
        return os.path.isdir(to_local_path(path))

    def mkdirs(self, path: str) -> None:
        os.makedirs(to_local_path(path), exist_ok=True)

    def read_bytes(self, path: str) -> bytes:
        try:
            with open(to_local_path(path), "rb") as fh:
                return fh.read()
        except OSError as exc:
            raise FileSystemError(f"cannot read {path}: {exc.strerror}") from None

    def read_head(self, path: str, size: int) -> bytes:
        """The first ``size`` bytes (fewer when the file is shorter)."""
        try:
            with open(to_local_path(path), "rb") as fh:
                return fh.read(size)
        except OSError as exc:
            raise FileSystemError(f"cannot read {path}: {exc.strerror}") from None

    def write_atomic(self, path: str, data: bytes) -> None:
        """Write to a temporary name in the same directory, then rename.

        A reader never sees a half-written file, and a crash leaves at most a
        ``.tmp-*`` file that is not a valid export name.
        """
        local = to_local_path(path)
        directory = os.path.dirname(local) or "."
        os.makedirs(directory, exist_ok=True)
        tmp = os.path.join(directory, f".tmp-{uuid.uuid4().hex}-{os.path.basename(local)}")
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, local)

    def delete(self, path: str) -> None:
        local = to_local_path(path)
        if os.path.isdir(local):
            import shutil

            shutil.rmtree(local)
        elif os.path.exists(local):
            os.remove(local)

    def set_mtime(self, path: str, when: dt.datetime) -> None:
        """Local landing only: give a file the modification time it had upstream."""
        ts = when.replace(tzinfo=dt.UTC).timestamp()
        os.utime(to_local_path(path), (ts, ts))


class DbutilsFileSystem(FileSystem):
    """Databricks adapter for ``dbfs:/`` listing where the FUSE mount is absent."""

    def __init__(self, dbutils: Any) -> None:
        self._dbutils = dbutils

    def list_files(self, directory: str) -> list[FileInfo]:
        if not directory.startswith("dbfs:/"):
            return super().list_files(directory)
        try:
            entries = self._dbutils.fs.ls(directory)
        except Exception as exc:  # dbutils raises py4j/ExecutionError types
            raise FileSystemError(
                f"directory cannot be listed: {directory} ({type(exc).__name__})"
            ) from None
        out = []
        for e in entries:
            if e.name.endswith("/"):
                continue
            mtime = dt.datetime.fromtimestamp(e.modificationTime / 1000, tz=dt.UTC)
            mtime = mtime.replace(tzinfo=None)
            out.append(FileInfo(mtime, e.path, e.name, int(e.size)))
        return out


def get_dbutils(spark: Any) -> Any:
    """dbutils when running on Databricks, else ``None``.

    Classic clusters have ``pyspark.dbutils``; serverless compute has only the
    SDK's runtime module. Off Databricks that module would try to build a
    remote session, so it is only asked where a Databricks Runtime says so.
    """
    try:
        from pyspark.dbutils import DBUtils  # type: ignore[import-not-found]

        return DBUtils(spark)
    except Exception:
        pass
    if not os.environ.get("DATABRICKS_RUNTIME_VERSION"):
        return None
    try:
        from databricks.sdk.runtime import dbutils
    except Exception:
        return None
    return dbutils


def filesystem_for(spark: Any) -> FileSystem:
    dbutils = get_dbutils(spark)
    return DbutilsFileSystem(dbutils) if dbutils is not None else FileSystem()
