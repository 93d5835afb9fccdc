"""Helpers for luciole policies written in Python (componentize-py).

Decorate your policy class with ``@policy``::

    from luciole_policy import policy, Decline

    @policy
    class Coordinator(exports.Coordinator):
        def choose(self, view, current):
            if not view.capacity:
                raise Decline("an empty view")
            ...

What it does to every public method of the class:

- ``raise Decline("why")`` declines the call (coordinator and placement only): the node's
  fallback answers, the decline is counted and logged with your message. It is the same as
  ``raise Err(types.PolicyError(message="why"))``, which still works.
- Any other exception is a bug: it is written to the node's log at error level with its type,
  message, file, line and traceback, and then raised on, which stops the call with a trap.
  The node counts it as a fault of your policy (repeated faults quarantine it) and answers
  with its fallback.

Without the decorator an exception still stops the call, but all the node sees is a
WebAssembly trap: no type, no message, no line.
"""

import functools

from componentize_py_types import Err
from wit_world.imports import log, types

__all__ = ["Decline", "policy"]

# The node keeps 1 KiB of a message and 256 bytes of a field's value.
_MESSAGE_MAX = 1000
_FIELD_MAX = 250


class Decline(Exception):
    """Declines a coordinator or placement call: the node's fallback answers instead."""


def policy(cls):
    """Wraps every public method of ``cls`` (see the module's documentation)."""
    for name, value in list(vars(cls).items()):
        if callable(value) and not name.startswith("_"):
            setattr(cls, name, _guarded(name, value))
    return cls


def _guarded(name, method):
    @functools.wraps(method)
    def call(*args, **kwargs):
        try:
            return method(*args, **kwargs)
        except Err:
            raise
        except Decline as decline:
            if name in ("choose", "place"):
                raise Err(types.PolicyError(message=str(decline))) from None
            _report(name, decline, "a migration decision cannot decline: answer it instead")
            raise
        except BaseException as error:
            _report(name, error, None)
            raise

    return call


def _report(name, error, note):
    """Writes one error line naming the exception, its message and where it was raised."""
    try:
        kind = type(error).__name__
        # The frames by hand: traceback's own helpers read the source files for their lines,
        # and a component has no files (its file system calls trap).
        frames = []
        tb = error.__traceback__
        while tb is not None:
            code = tb.tb_frame.f_code
            frames.append((_short(code.co_filename), tb.tb_lineno, code.co_name))
            tb = tb.tb_next
        # The innermost frame is where it was raised; leave out this module's wrapper.
        frames = [f for f in frames if f[0] != "luciole_policy.py"] or frames
        where = frames[-1] if frames else None
        place = f"{where[0]}:{where[1]}" if where else "unknown"
        message = f"uncaught {kind} in {name}: {error} (at {place})"
        if note:
            message += f"; {note}"
        stack = " <- ".join(f"{fn} {file}:{line}" for file, line, fn in reversed(frames))
        fields = [
            log.Field(key="exception", value=kind),
            log.Field(key="message", value=str(error)[:_FIELD_MAX]),
            log.Field(key="file", value=where[0] if where else ""),
            log.Field(key="line", value=str(where[1]) if where else ""),
            log.Field(key="function", value=where[2] if where else name),
            log.Field(key="traceback", value=stack[:_FIELD_MAX]),
        ]
        log.log(log.Level.ERROR, message[:_MESSAGE_MAX], fields)
    except BaseException:
        # Reporting must never hide the error itself.
        pass


def _short(path):
    """The file name without the build machine's directories."""
    return path.rsplit("/", 1)[-1]
