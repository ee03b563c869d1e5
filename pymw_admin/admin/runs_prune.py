"""``runs prune``: remove finished runs' directories, optionally only those older than an age.

A running run is never removed. Age counts from a run's end (its start when it ended without
recording one, e.g. lost in a reboot), by the server's clock. The directories are the owner's:
they are removed as the owner, never as root.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterable

from pymw_admin.admin.remote import Host
from pymw_admin.admin.runs import RunInfo, list_runs, runs_dir
from pymw_admin.admin.target import ProjectTarget
from pymw_admin.errors import UsageError

UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_age(text: str) -> float:
    """'30d', '12h', '90m', '45s', '2w' (a bare number is days) -> seconds."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*", text)
    if not match:
        raise UsageError(f"invalid age {text!r}: give a number with s, m, h, d or w (e.g. 30d)")
    return float(match.group(1)) * UNITS[match.group(2) or "d"]


def prunable(items: Iterable[RunInfo], now: float, older_than: float | None) -> list[RunInfo]:
    """Finished runs (not running) that ended at least ``older_than`` seconds before ``now``."""
    chosen = []
    for info in items:
        if info.running:
            continue
        when = info.ended or info.started
        if older_than is not None and (when is None or now - when < older_than):
            continue
        chosen.append(info)
    return chosen


def prune(host: Host, target: ProjectTarget, older_than: float | None,
          dry_run: bool = False) -> list[RunInfo]:
    """Remove the prunable runs' directories; return what was (or would be) removed."""
    now = float(host.run("date +%s", what="reading the server's clock").stdout.strip())
    chosen = prunable(list_runs(host, target), now, older_than)
    if chosen and not dry_run:
        ids = " ".join(shlex.quote(info.id) for info in chosen)
        # each is checked again just before removal: a run never restarts, but be exact
        host.run(f"cd {shlex.quote(runs_dir(target))} && for d in {ids}; do "
                 '[ -e "$d/exit" ] || [ ! -e "$d/pid" ] || ! kill -0 "$(cat "$d/pid")" '
                 '2>/dev/null || continue; rm -rf -- "$d"; done',
                 user=target.owner, what="removing finished runs")
    return chosen
