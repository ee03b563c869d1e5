"""What the deployed app versions understand, read from the notes deploy-app leaves beside them."""

from __future__ import annotations

from pathlib import Path

from pymw_admin.interfaces.kit import app_features
from pymw_admin.wire.boinc_contract import FEATURES_FILE


def version(root: Path, number: str, platform: str, features: str | None) -> Path:
    where = root / "apps" / "pymw" / number / platform
    where.mkdir(parents=True)
    if features is not None:
        (where / FEATURES_FILE).write_text(features)
    return where


def test_the_newest_version_of_each_platform_counts(tmp_path: Path) -> None:
    version(tmp_path, "1", "linux", "inline-task\n")
    version(tmp_path, "2", "windows", None)
    newest_linux = version(tmp_path, "10", "linux", "inline-task other\n")  # 10 > 2, numerically
    (tmp_path / "apps" / "pymw" / ".incoming.x1y2").mkdir()  # deploy-app's unpacking aside
    (tmp_path / "apps" / "pymw" / "3").write_text("not a directory")
    newest = app_features.newest_versions(tmp_path / "apps" / "pymw")
    assert newest == {"linux": newest_linux, "windows": tmp_path / "apps" / "pymw" / "2" /
                      "windows"}
    assert app_features.features(newest_linux) == {"inline-task", "other"}
    assert app_features.features(newest["windows"]) == frozenset()
    assert not app_features.all_newest_understand(tmp_path, "pymw", "inline-task")
    version(tmp_path, "11", "windows", "inline-task\n")
    assert app_features.all_newest_understand(tmp_path, "pymw", "inline-task")
    assert not app_features.all_newest_understand(tmp_path, "other", "inline-task")
