"""The project's error base class.

Every error nerloop raises on purpose (bad input, a bad setting, a state it cannot resume from)
is a ``NerloopError``: the CLIs turn exactly these into a clear ``msg.fail`` (see
``nerloop.cli.run_app``) and let anything else surface as the bug it is, with its traceback,
instead of relabelling an unrelated error. Subclasses keep ``ValueError`` or ``RuntimeError``
as a second base where callers already catch those.
"""

from __future__ import annotations


class NerloopError(Exception):
    """An error with a message meant for the person running nerloop: what is wrong, where
    (file, line, task or setting) and how to fix it."""


class SettingsError(NerloopError, ValueError):
    """A settings file or command-line override that cannot be used."""
