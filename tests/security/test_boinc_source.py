"""L5: BOINC's source over plain http is refused; a git source pinned to a commit is fetched at
that commit and checked (against a real local git repository with a newer tip); a branch is
fetched at its tip, and the commit it was is recorded in the tree and said in the step's
report."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from pymw_admin.admin.plan import Context
from pymw_admin.admin.remote import LocalHost
from pymw_admin.admin.server import boinc_build
from pymw_admin.admin.server.spec import ProjectSpec
from pymw_admin.errors import RemoteError, UsageError


@pytest.mark.parametrize("text", ["http://example.org/boinc.tar.gz",
                                  "http://example.org/boinc.git@server_release/1.6/1.6.2"])
def test_plain_http_is_refused(text: str) -> None:
    with pytest.raises(UsageError, match="plain http"):
        boinc_build.parse_source(text)


def _repo(tmp_path: Path) -> tuple[Path, str, str]:
    repo = tmp_path / "boinc.git"
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    (repo / "a").write_text("1")
    subprocess.run([*git, "add", "a"], check=True)
    subprocess.run([*git, "commit", "-qm", "one"], check=True)
    first = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True,
                           check=True).stdout.strip()
    (repo / "a").write_text("2")
    subprocess.run([*git, "commit", "-qam", "two"], check=True)
    return repo, first, "0" * 40


def test_a_pinned_commit_is_what_gets_checked_out(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    repo, first, missing = _repo(tmp_path)
    monkeypatch.setattr(boinc_build, "BUILD_ROOT", str(tmp_path / "build"))
    host = LocalHost()
    spec = ProjectSpec("pin", "https://h/", "h", boinc_source=f"file://{repo}@{first}")
    source = boinc_build.parse_source(spec.boinc_source)
    assert source.ref == first
    if not host.is_root():
        pytest.skip("the fetch runs as root")
    boinc_build.apply(Context(host, spec), [boinc_build.Action("fetch", "")])
    tree = Path(boinc_build.tree_dir(source))
    assert (tree / "a").read_text() == "1"  # the pinned commit, not the branch's tip
    assert (tree / boinc_build.COMMIT_FILE).read_text() == first + "\n"
    bad = ProjectSpec("pin", "https://h/", "h", boinc_source=f"file://{repo}@{missing}")
    with pytest.raises(RemoteError):
        boinc_build.apply(Context(host, bad), [boinc_build.Action("fetch", "")])


def test_a_branch_is_fetched_at_its_tip_and_the_commit_is_said(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    repo, _, _ = _repo(tmp_path)
    tip = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True,
                         text=True, check=True).stdout.strip()
    branch = subprocess.run(["git", "-C", str(repo), "rev-parse", "--abbrev-ref", "HEAD"],
                            capture_output=True, text=True, check=True).stdout.strip()
    monkeypatch.setattr(boinc_build, "BUILD_ROOT", str(tmp_path / "build"))
    host = LocalHost()
    if not host.is_root():
        pytest.skip("the fetch runs as root")
    spec = ProjectSpec("pin", "https://h/", "h", boinc_source=f"file://{repo}#{branch}")
    ctx = Context(host, spec)
    boinc_build.apply(ctx, [boinc_build.Action("fetch", "")])
    tree = Path(boinc_build.tree_dir(boinc_build.parse_source(spec.boinc_source)))
    assert (tree / "a").read_text() == "2"
    assert (tree / boinc_build.COMMIT_FILE).read_text() == tip + "\n"
    assert boinc_build.gather(ctx).commit == tip
    assert ctx.said == [f"BOINC source at commit {tip} (pin it: --boinc-source "
                        f"file://{repo}@{tip})"]
