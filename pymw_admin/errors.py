"""One exception family: every error the library raises on purpose is a PymwError.

The CLI prints ``str(error)`` as one line and exits with ``error.exit_code``; ``--debug`` shows the
traceback. Messages must never contain secrets.
"""

from __future__ import annotations


class PymwError(Exception):
    """Base of every error pymw-admin raises on purpose."""

    exit_code: int = 1


class UsageError(PymwError):
    """Bad input from the user: a wrong option, a missing file, an invalid name."""

    exit_code = 2


class ConfigError(UsageError):
    """A project file or setting is malformed or missing."""


class EngineUnavailable(PymwError):
    """An interface's engine (MPI, HTCondor, BOINC) is not installed or not configured."""

    exit_code = 3


class RemoteError(PymwError):
    """A remote host could not be reached, refused us, or a remote step failed."""

    exit_code = 4
