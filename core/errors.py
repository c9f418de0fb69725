"""The one base class of errors a user can fix: a wrong parameter, a missing or damaged file, an option
that does not fit the model. The command line prints such an error in one line naming the key or file
and exits 2; any other exception is a bug and keeps its traceback."""

from __future__ import annotations


class UserError(Exception):
    """Mixed into each user-facing error class beside its usual base (ValueError, FileNotFoundError, ...),
    so that code catching those keeps working."""


class UsageError(UserError, ValueError):
    """A value the user gave (an option, an argument) that cannot be used; the message names it."""


class MissingFile(UserError, FileNotFoundError):
    """A file that params, an option or an earlier stage should have provided is absent; the message names
    it and what writes it."""
