"""deploy-app's first step: every bundle runs the Python minor the server's masters run.

A master on the server runs under the server's ``python3`` (pymw_admin.admin.runs makes its venv
from it), and a task pickled by one minor version can crash another's worker. So a bundle of
another minor is refused here, before any other step changes anything.
"""

from __future__ import annotations

from pymw_admin.admin.apps.spec import AppSpec
from pymw_admin.admin.plan import Action, Context
from pymw_admin.admin.project import Project
from pymw_admin.errors import ConfigError, RemoteError

PYTHON_MINOR = "python3 -c 'import sys; print(\"%d.%d\" % sys.version_info[:2])'"


def gather(ctx: Context, app: AppSpec) -> str:
    """The minor version of the server's python3, as ``3.11``."""
    out = ctx.host.run(PYTHON_MINOR, what="python3 on the server", check=False)
    minor = out.stdout.strip()
    if not out.ok or not minor.startswith("3."):
        raise RemoteError("the server has no working python3, which masters run under: "
                          "apt-get install python3 there")
    return minor


def decide(minor: str, spec: Project, app: AppSpec) -> list[Action]:
    wrong = sorted(f"{b.manifest.platform} ({b.manifest.python})" for b in app.bundles
                   if b.manifest.python != minor)
    if wrong:
        raise ConfigError(
            f"the server's masters run Python {minor} but these bundles run another minor: "
            f"{', '.join(wrong)}; rebuild them with `pymw-admin bundle build --platform P "
            f"--python {minor}` (nothing was changed)")
    return []


def apply(ctx: Context, actions: list[Action], app: AppSpec) -> None:
    """Nothing to change: this step only refuses."""
