"""What a project's deployed app versions understand, as deploy-app noted it beside each one.

The scheduler sends a work unit to the newest version of the app for the volunteer's platform,
so a master may rely on a worker feature only when every platform's newest version lists it in
its ``.pymw-features`` (versions deployed before the file existed list nothing).
"""

from __future__ import annotations

from pathlib import Path

from pymw_admin.wire.boinc_contract import FEATURES_FILE

_MAX_BYTES = 4096  # a few feature names; the file is the owner's, but never read unbounded


def newest_versions(apps_dir: Path) -> dict[str, Path]:
    """platform -> the directory of its highest-numbered version (``apps/APP/N/PLATFORM``)."""
    newest: dict[str, tuple[int, Path]] = {}
    try:
        versions = [p for p in apps_dir.iterdir() if p.name.isdigit() and p.is_dir()]
    except OSError:
        return {}
    for version in versions:
        number = int(version.name)
        for platform in version.iterdir():
            if platform.is_dir() and number > newest.get(platform.name, (-1, platform))[0]:
                newest[platform.name] = (number, platform)
    return {name: path for name, (_, path) in newest.items()}


def features(version_dir: Path) -> frozenset[str]:
    try:
        with (version_dir / FEATURES_FILE).open("rb") as f:
            text = f.read(_MAX_BYTES).decode(errors="replace")
    except OSError:
        return frozenset()
    return frozenset(text.split())


def all_newest_understand(project_root: Path, app_name: str, feature: str) -> bool:
    """Whether every platform's newest version of the app lists ``feature`` (False when the app
    has no version directory at all)."""
    newest = newest_versions(project_root / "apps" / app_name)
    return bool(newest) and all(feature in features(path) for path in newest.values())


__all__ = ["all_newest_understand", "features", "newest_versions"]
