"""Every error the product raises on purpose, under one root.

:class:`PatronageError` is what the CLI and the task wrapper know about: its
message is ours (settings, files, tables, rules, counts) and never holds
record contents. The four direct subclasses say what the operator does next;
the leaves only name where the failure came from, and keep the built-in base
their callers have always caught (``ValueError``, ``OSError``...).
"""

from __future__ import annotations


class PatronageError(Exception):
    """A failure the product detected and explained; the message says what and where."""


class ConfigError(PatronageError, ValueError):
    """A setting or job parameter is missing or wrong: fix the job parameters or variables."""


class InputError(PatronageError):
    """An input (file, directory, source table) is missing or unusable: fix it, then repair."""


class IntegrityError(PatronageError):
    """The product's own tables or files are not what a step expects: investigate first."""


class AlertError(PatronageError):
    """The run itself went through but found something an operator must look at."""


class RebuildNotConfirmed(ConfigError):
    """Rebuild drops the target: it runs only when confirm_rebuild names it."""


class FileSystemError(InputError, OSError):
    """A path could not be read or written; the message names the path."""


class MissingInputError(InputError, FileNotFoundError):
    """A file the step needs (seed, backup) is not where its setting points."""


class IdentitySourceError(InputError, RuntimeError):
    """An MVI source cannot be read; the message names the setting and the path."""


class MissingColumnsError(InputError, ValueError):
    """An MVI source lacks columns SPEC §2.4 requires; the message names them."""


class LandingError(InputError, ValueError):
    """A fixture file is missing or malformed; the message names it."""


class RecordFormatError(IntegrityError, ValueError):
    """A value cannot be written in its fixed-width field; the file is refused."""


class BackupError(IntegrityError, RuntimeError):
    """A copy does not match its source; the message names table and figures."""


class TaskFailed(PatronageError, RuntimeError):
    """A task failed; the message is the scrubbed description of what it raised."""


class RunFailed(AlertError, RuntimeError):
    """The run had a failed task; raised after its log row is written."""


class FreshnessGap(AlertError, RuntimeError):
    """At least one freshness check failed; the message lists every gap."""
