"""The bundle's main program (PyInstaller's entry script); the logic is pymw_admin.bundles.entry."""

import importlib.util
import sys


def _lazy_runtime_package() -> None:
    """Let the worker import pymw_admin.runtime.* without the master API the package loads.

    ``pymw_admin/runtime/__init__.py`` imports the master, options and interfaces (logging, argparse
    and more): a third of the bundle's start-up, and the worker needs none of it. Its code still
    runs, on first use of a name it defines.
    """
    spec = importlib.util.find_spec("pymw_admin.runtime")
    if spec is None or spec.loader is None:
        return
    module = importlib.util.module_from_spec(spec)

    def load(name: str) -> object:
        del module.__getattr__
        spec.loader.exec_module(module)
        return getattr(module, name)

    module.__getattr__ = load  # type: ignore[method-assign]
    sys.modules[spec.name] = module


_lazy_runtime_package()

from pymw_admin.bundles.entry import main  # noqa: E402

sys.exit(main())
