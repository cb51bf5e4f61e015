"""The one error of the local job runner."""

from __future__ import annotations


class JobsError(Exception):
    """The bundle, the job or the command line is wrong; the message says where."""
