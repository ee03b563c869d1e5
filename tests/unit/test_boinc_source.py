"""The testbed's one BOINC git source: $PYMW_BOINC_GIT (a URL or a bundle file) first, else the
public repository tried once; each tag checked out once, by commit; $PYMW_BOINC_SRC wins."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from testbed import boinc_git, boinc_source, boinc_tree


def git(*args: str, cwd: Path) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True,
                          text=True).stdout.strip()


@pytest.fixture
def bundle_file(tmp_path: Path) -> Path:
    """A git bundle with both release tags, each a tree with the directories a server build
    reads first (as ../shared/boinc/boinc-server.bundle holds them)."""
    repo = tmp_path / "upstream"
    repo.mkdir()
    git("init", "-q", cwd=repo)
    for n, tag in enumerate((boinc_source.OLDER, boinc_source.RELEASE)):
        for part in ("sched", "tools"):
            (repo / part).mkdir(exist_ok=True)
            (repo / part / "VERSION").write_text(f"{tag}\n")
        git("add", "-A", cwd=repo)
        git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", f"r{n}",
            cwd=repo)
        git("tag", tag, cwd=repo)
    bundle = tmp_path / "boinc.bundle"
    git("bundle", "create", str(bundle), "--all", cwd=repo)
    return bundle


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    where = tmp_path / "cache"
    monkeypatch.setattr(boinc_source, "BARE", where / "boinc.git")
    monkeypatch.setattr(boinc_source, "TREES", where / "boinc-trees")
    monkeypatch.setattr(boinc_source, "_failure", None)
    for name in ("PYMW_BOINC_GIT", "PYMW_BOINC_SRC", "PYMW_BOINC_SRC_OLD"):
        monkeypatch.delenv(name, raising=False)
    return where


def test_a_bundle_file_gives_both_trees_once(cache: Path, bundle_file: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYMW_BOINC_GIT", str(bundle_file))
    new, old = boinc_tree.find(), boinc_tree.find_older()
    assert new is not None and old is not None and new != old
    assert (new / "sched" / "VERSION").read_text() == f"{boinc_source.RELEASE}\n"
    assert (old / "sched" / "VERSION").read_text() == f"{boinc_source.OLDER}\n"
    commit = git("rev-parse", f"{boinc_source.RELEASE}^{{commit}}", cwd=cache / "boinc.git")
    assert new.name == commit[:16]  # named by the tag's commit: a built tree is reused by it
    assert boinc_git.find() == cache / "boinc.git"
    # the second run reads the cache: the source may be gone, and a build in the tree stays
    (new / "sched" / "feeder").write_text("built\n")
    bundle_file.unlink()
    assert boinc_tree.find() == new and (new / "sched" / "feeder").exists()


def test_ready_trees_win_over_the_git_source(cache: Path, bundle_file: Path, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    mine = tmp_path / "mine"
    (mine / "sched").mkdir(parents=True)
    (mine / "tools").mkdir()
    monkeypatch.setenv("PYMW_BOINC_GIT", str(bundle_file))
    monkeypatch.setenv("PYMW_BOINC_SRC", str(mine))
    assert boinc_tree.find() == mine
    assert not (cache / "boinc.git").exists()  # nothing fetched for it
    monkeypatch.setenv("PYMW_BOINC_SRC_OLD", str(tmp_path / "nothing"))
    assert boinc_tree.find_older() is None
    assert "PYMW_BOINC_SRC_OLD" in boinc_tree.older_missing_reason()


def test_without_a_setting_the_public_repository_is_tried_once(
        cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    unreachable = f"file://{tmp_path}/no-such-repository.git"
    monkeypatch.setattr(boinc_source, "PUBLIC", unreachable)
    assert boinc_source.origin() == unreachable
    tries = []
    real_git = boinc_source._git

    def counting(*args: str, timeout: float | None = None) -> subprocess.CompletedProcess[str]:
        if "fetch" in args:
            tries.append(timeout)
        return real_git(*args, timeout=timeout)

    monkeypatch.setattr(boinc_source, "_git", counting)
    assert boinc_tree.find() is None
    assert boinc_tree.find_older() is None and boinc_git.find() is None
    assert tries == [boinc_source.PUBLIC_TIMEOUT_S]  # once, with the short timeout
    reason = boinc_tree.missing_reason()
    assert unreachable in reason and "PYMW_BOINC_GIT" in reason
    assert "\n" not in reason


def test_a_missing_bundle_file_is_named(cache: Path, tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYMW_BOINC_GIT", str(tmp_path / "gone.bundle"))
    assert boinc_tree.find() is None
    assert "gone.bundle" in boinc_tree.missing_reason()


def test_ci_points_the_source_at_the_shared_bundle() -> None:
    script = (Path(__file__).resolve().parents[2] / ".ci" / "run").read_text()
    assert "shared/boinc/boinc-server.bundle" in script and "PYMW_BOINC_GIT" in script
