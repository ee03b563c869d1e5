"""The bundle cache on an execute node holds programs later jobs run, so another user must never
be able to put one there: a cache directory that is not this user's alone (someone else's, group-
or other-writable, a symlink), in a place others may rearrange (writable, not sticky), or reached
from an account other users' jobs share, is never used; the job unpacks in its own directory and
still runs. Each case plants a complete-looking copy that must never run."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.helpers.bundle_node import Job, Node, make_node

PLANTED = "PLANTED PROGRAM RAN"


@pytest.fixture()
def node(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Node:
    return make_node(tmp_path, monkeypatch)


def _plant(cache: Path, digest: str) -> None:
    """What another user would leave: a copy that looks complete (the marker counts it right)."""
    copy = cache / digest / "pymw-bundle"
    (copy / "_internal").mkdir(parents=True)
    (copy / "pymw-worker").write_text(f'#!/bin/sh\necho "{PLANTED}"\n')
    (copy / "pymw-worker").chmod(0o755)
    (copy / "_internal" / "lib.txt").write_text("")
    entries = 1 + sum(1 for _ in copy.rglob("*"))
    (cache / digest / "complete").write_text(f"{entries}\n")


def _ran_in_its_own_directory(job: Job) -> None:
    job.ok()
    assert PLANTED not in job.stdout
    assert job.ran_from == (job.cwd / "pymw-bundle").resolve()


@pytest.mark.parametrize("mode", [0o770, 0o707, 0o720, 0o702])
def test_a_cache_directory_others_may_write_to_is_not_used(node: Node, mode: int) -> None:
    node.cache.mkdir()
    _plant(node.cache, node.digest)
    node.cache.chmod(mode)
    job = node.run()
    _ran_in_its_own_directory(job)
    assert "is not this user's alone" in job.stderr
    assert node.cache.stat().st_mode & 0o777 == mode  # left as it was: not ours to repair
    assert node.cache_entries() == [node.digest]


def test_a_cache_directory_that_is_a_symlink_is_not_followed(node: Node) -> None:
    target = node.root / "their-dir"
    target.mkdir(mode=0o700)
    _plant(target, node.digest)
    node.cache.symlink_to(target)
    _ran_in_its_own_directory(node.run())
    assert sorted(p.name for p in target.iterdir()) == [node.digest]  # nothing written there
    dangling = node.root / "not-yet"
    node.cache.unlink()
    node.cache.symlink_to(dangling)  # mkdir must not create the target either
    _ran_in_its_own_directory(node.run())
    assert not dangling.exists()


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a directory to another user needs root")
def test_another_users_cache_directory_is_not_used(node: Node) -> None:
    node.cache.mkdir(mode=0o700)
    _plant(node.cache, node.digest)
    os.chown(node.cache, 54321, 54321)  # made first by someone else, as private as ours
    _ran_in_its_own_directory(node.run())


def test_a_cache_directory_owned_by_another_uid_is_not_used(node: Node) -> None:
    # without root: this job's id says uid 54321, so the directory (ours) is another uid's
    node.add_bin("id", '#!/bin/sh\n[ "$1" = -u ] && { echo 54321; exit; }\nexec /usr/bin/id "$@"\n')
    other = Path(node.env["TMPDIR"]) / "pymw-bundles-54321"
    other.mkdir(mode=0o700)
    _plant(other, node.digest)
    _ran_in_its_own_directory(node.run())


@pytest.mark.parametrize(("mode", "used"), [(0o777, False), (0o775, False), (0o1777, True),
                                            (0o755, True)])
def test_the_place_holding_the_cache_must_keep_others_from_rearranging_it(
    node: Node, mode: int, used: bool
) -> None:
    # in a writable place without the sticky bit anyone may rename our directory and put theirs
    tmpdir = Path(node.env["TMPDIR"])
    tmpdir.chmod(mode)
    job = node.run().ok()
    assert (job.ran_from == node.cached.resolve()) is used
    assert node.cache.exists() is used


@pytest.mark.parametrize("owner", ["nobody", "slot1", ""])
def test_a_job_run_by_an_account_other_users_share_does_not_use_the_cache(
    node: Node, owner: str
) -> None:
    # HTCondor runs jobs it cannot run as their owner as nobody or slotN, shared by all users
    ad = node.root / ".job.ad"
    ad.write_text(f'Owner = "{owner}"\n' if owner else "ClusterId = 1\n")
    node.cache.mkdir(mode=0o700)
    _plant(node.cache, node.digest)
    _ran_in_its_own_directory(node.run(_CONDOR_JOB_AD=str(ad)))
    _ran_in_its_own_directory(node.run(_CONDOR_JOB_AD=str(node.root / "no-such-ad")))
