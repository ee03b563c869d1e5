"""Run a built bundle's own import check (``pymw-worker --pymw-selfcheck DIST...``).

Hashes only say the files are the ones built; a bundle can be built broken (a vendored library
stripped, a module the freezer did not see) and still match its manifest. So the build ends by
running the bundle, through the platform's runner (wine, qemu-user, or none), to import every
package it ships, and ``bundle list --verify`` does the same. A failure is one line naming the
package.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Sequence

from pymw_admin.bundles.entry import SELFCHECK_OPTION
from pymw_admin.bundles.manifest import Bundle
from pymw_admin.errors import ConfigError

TIMEOUT = 300.0  # a first wine start creates its prefix


def run(bundle: Bundle, dists: Sequence[str], runner: Sequence[str],
        runner_env: dict[str, str]) -> dict[str, str]:
    """``{dist: version}`` as the bundle imports them; ConfigError names the first failure."""
    platform = bundle.manifest.platform
    command = [*runner, str(bundle.executable), SELFCHECK_OPTION, *dists]
    # a bare environment as a client gives, pipes as standard streams (Windows Python under wine
    # cannot start with /dev/null), the bundle's own directory as working directory
    env = {"PATH": "/usr/bin:/bin", **runner_env}
    try:
        done = subprocess.run(command, cwd=bundle.dir, env=env, input=b"", capture_output=True,
                              timeout=TIMEOUT)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ConfigError(f"the {platform} bundle at {bundle.root} could not be run: {exc}"
                          ) from None
    report = _report(done.stdout.decode(errors="replace"))
    if report is None:
        said = done.stderr.decode(errors="replace").strip().splitlines() or ["(no output)"]
        raise ConfigError(f"the {platform} bundle at {bundle.root} does not start "
                          f"(exit {done.returncode}): {said[-1].strip()}")
    failed: dict[str, str] = report.get("failed", {})
    if failed:
        name, why = next(iter(failed.items()))
        more = f" (and {len(failed) - 1} more: {', '.join(list(failed)[1:])})" \
            if len(failed) > 1 else ""
        raise ConfigError(f"the {platform} bundle cannot import {name}: {why}{more}")
    imported: dict[str, str] = report.get("imported", {})
    return imported


def _report(stdout: str) -> dict[str, dict[str, str]] | None:
    # the last JSON line: a runner may print its own lines first
    for line in reversed(stdout.splitlines()):
        if line.startswith("{"):
            try:
                value = json.loads(line)
            except ValueError:
                return None
            return value if isinstance(value, dict) else None
    return None
