"""deploy-app's plan: register, scripts and templates, the task key, versions, daemons, in that
order."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

from pymw_admin.admin.apps import (
    daemons,
    master_python,
    register,
    retire,
    scripts,
    task_key,
    versions,
)
from pymw_admin.admin.apps.spec import AppSpec
from pymw_admin.admin.plan import Action, Context, Step, StepReport, run_plan
from pymw_admin.admin.server.spec import ProjectSpec
from pymw_admin.bundles import manifest as mf
from pymw_admin.errors import ConfigError

_MODULES: tuple[tuple[str, str, Any], ...] = (
    ("python", "check the bundles run the server's Python minor", master_python),
    ("app", "register the app", register),
    ("files", "install the assimilator, comparer and templates", scripts),
    ("task_key", "make the project's task-signing key", task_key),
    ("versions", "install an app version per bundle", versions),
    ("retire", "deprecate older app versions (--retire-older)", retire),
    ("app_daemons", "configure and start the app's daemons", daemons),
)


def _bind(module: Any, app: AppSpec) -> tuple[Callable[[Context], Any],
                                             Callable[[Any, ProjectSpec], list[Action]],
                                             Callable[[Context, list[Action]], None]]:
    return (partial(module.gather, app=app), partial(module.decide, app=app),
            partial(module.apply, app=app))


def steps(app: AppSpec) -> list[Step]:
    made = []
    for name, title, module in _MODULES:
        gather, decide, apply = _bind(module, app)
        made.append(Step(name, title, gather, decide, apply,
                         hint="fix the cause and run the same deploy-app again"))
    return made


def find_bundles(dist: Path) -> tuple[mf.Bundle, ...]:
    """The bundles under ``dist`` (one per platform); at least one, each whole."""
    found = tuple(mf.find_bundles(dist))
    if not found:
        raise ConfigError(f"no bundle in {dist}: build one first (pymw-admin bundle build)")
    for bundle in found:
        problems = mf.check(bundle.manifest, bundle.dir, hashes=False)
        if problems:
            raise ConfigError(f"the {bundle.manifest.platform} bundle in {bundle.root} does not "
                              f"match its manifest ({problems[0]}): rebuild it")
    return found


def deploy(ctx: Context, app: AppSpec, *, dry_run: bool = False,
           on_start: Callable[[int, Step], None] | None = None,
           on_done: Callable[[int, StepReport], None] | None = None) -> list[StepReport]:
    return run_plan(ctx, steps(app), dry_run=dry_run, on_start=on_start, on_done=on_done)


__all__: Sequence[str] = ("deploy", "find_bundles", "steps")
