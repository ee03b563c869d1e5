"""How a worker pickles the exception a task raised, so that the master can rebuild it.

Pickle rebuilds an exception by calling its class with ``args``; a class with its own
``__init__`` (``MyErr(code)`` calling ``super().__init__(f"code {code}")``) then gets the wrong
arguments or fails, and the master had no exception at all. An exception whose class defines an
``__init__`` outside the built-ins is pickled instead as its class, ``args`` and ``__dict__``,
and rebuilt without calling ``__init__``. This is for trusted results only: the untrusted decoder
rebuilds no exception.
"""

from __future__ import annotations

import io
import pickle
from typing import Any

import cloudpickle


def rebuild_exception(cls: type[BaseException], args: tuple[Any, ...],
                      state: dict[str, Any]) -> BaseException:
    """The exception as the worker had it: ``args`` and attributes set, ``__init__`` not run."""
    exc = cls.__new__(cls)
    exc.args = args
    exc.__dict__.update(state)
    return exc


def _own_init(cls: type) -> bool:
    return any("__init__" in vars(k) for k in cls.__mro__ if k.__module__ != "builtins")


class _ExceptionPickler(cloudpickle.Pickler):
    def reducer_override(self, obj: Any) -> Any:
        if isinstance(obj, BaseException) and _own_init(type(obj)):
            return rebuild_exception, (type(obj), obj.args, dict(vars(obj)))
        return super().reducer_override(obj)


def dumps_exception(exc: BaseException, protocol: int) -> bytes:
    """``exc`` pickled (its class by value when the master script defined it), or b"" when the
    master could not rebuild it: only what ``pickle.loads`` takes back is shipped."""
    for dumps in (_dumps_by_state, cloudpickle.dumps):
        try:
            payload = dumps(exc, protocol=protocol)
            pickle.loads(payload)
        except Exception:
            continue
        return payload
    return b""


def _dumps_by_state(exc: BaseException, protocol: int) -> bytes:
    out = io.BytesIO()
    _ExceptionPickler(out, protocol=protocol).dump(exc)
    return out.getvalue()
