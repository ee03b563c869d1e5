"""A packed bundle on an execute node: unpacked once into the user's cache, keyed by the payload's
digest, and run from there by every later job; jobs starting together never run a half-unpacked
copy; whatever stops the cache, the job unpacks the bundle in its own directory as before.
(Hostile directories are in tests/security/test_bundle_cache.py.)"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.helpers.bundle_node import (
    LIB,
    Node,
    fake_bundle,
    header_digest,
    make_node,
    pack,
    payload_digest,
)

# the shells a Debian node has (sh is dash there); every one of them is on this test's machine
SHELLS = {"sh": (), "dash": ("dash",), "bash --posix": ("bash", "--posix")}


@pytest.fixture()
def node(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Node:
    return make_node(tmp_path, monkeypatch)


@pytest.mark.parametrize("shell", list(SHELLS))
def test_the_first_job_unpacks_into_the_cache_and_later_jobs_run_from_it(
    node: Node, shell: str
) -> None:
    first = node.run("t 1.task", "t 1.result", shell=SHELLS[shell]).ok()
    assert first.ran_from == node.cached.resolve()
    assert first.args == ["t 1.task", "t 1.result"]
    assert not first.unpacked_here
    assert node.tar_runs() == 1
    for _ in range(2):
        again = node.run("t 2.task", "t 2.result", shell=SHELLS[shell]).ok()
        assert again.ran_from == node.cached.resolve() and not again.unpacked_here
        assert again.args == ["t 2.task", "t 2.result"]
    assert node.tar_runs() == 1  # no job after the first unpacked anything
    assert node.cache_entries() == [node.digest]
    assert node.cache.stat().st_mode & 0o777 == 0o700


def test_the_digest_is_the_payloads_and_a_bundle_always_packs_to_the_same_bytes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bundle = fake_bundle(tmp_path)
    program = pack(bundle, tmp_path / "home", monkeypatch)
    assert header_digest(program) == payload_digest(program)
    first = program.read_bytes()
    program.unlink()  # another master, or a cleared cache: packed again
    assert pack(bundle, tmp_path / "home", monkeypatch).read_bytes() == first
    (bundle / "_internal" / "more.txt").write_text("a new file\n")
    assert header_digest(pack(bundle, tmp_path / "home", monkeypatch)) != header_digest(program)


def test_jobs_starting_together_on_an_empty_cache_share_one_copy(node: Node) -> None:
    # each tar waits, so all four unpack at once and three lose the race to the final name
    started = [node.start(f"{i}.task", f"{i}.result", TAR_DELAY="0.5") for i in range(4)]
    for proc, _ in started:
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        assert f"ran-from={node.cached.resolve()}\n" in out and LIB in out
    assert all(not (cwd / "pymw-bundle").exists() for _, cwd in started)
    assert node.tar_runs() == 4
    assert node.cache_entries() == [node.digest]  # no temporary copy left behind
    assert sorted(p.name for p in (node.cache / node.digest).iterdir()) == [
        "complete", "pymw-bundle"]
    node.run().ok()
    assert node.tar_runs() == 4


def test_a_copy_that_lost_files_is_unpacked_again(node: Node) -> None:
    node.run().ok()
    (node.cached / "_internal" / "lib.txt").unlink()  # as /tmp's ageing would
    again = node.run().ok()
    assert again.ran_from == node.cached.resolve()
    assert node.tar_runs() == 2
    assert node.cache_entries() == [node.digest]


def test_a_bundle_that_adds_files_to_its_copy_keeps_it(node: Node) -> None:
    node.run().ok()
    (node.cached / "_internal" / "written-at-run-time").write_text("")
    assert node.run().ok().ran_from == node.cached.resolve()
    assert node.tar_runs() == 1  # only a missing entry makes a copy incomplete


def test_a_half_unpacked_copy_is_never_run(node: Node) -> None:
    node.cache.mkdir(mode=0o700)
    # a copy at the final name whose marker never came (not from this header: rename is atomic)
    partial = node.cache / node.digest / "pymw-bundle"
    partial.mkdir(parents=True)
    (partial / "pymw-worker").write_text('#!/bin/sh\necho "ran the partial copy"\n')
    (partial / "pymw-worker").chmod(0o755)
    # and another job's copy still being unpacked under its temporary name
    unpacking = node.cache / ".unpack.abcdef"
    shutil.copytree(partial, unpacking / "pymw-bundle")
    job = node.run().ok()
    assert "partial" not in job.stdout
    assert job.ran_from == node.cached.resolve()
    assert node.tar_runs() == 1
    assert node.cache_entries() == [".unpack.abcdef", node.digest]  # not another job's to remove


@pytest.mark.parametrize("tmpdir", ["missing", "a file"])
def test_without_a_place_for_the_cache_the_job_unpacks_in_its_own_directory(
    node: Node, tmpdir: str
) -> None:
    place = node.root / "elsewhere"
    if tmpdir == "a file":
        place.write_text("")
    job = node.run("a.task", TMPDIR=str(place)).ok()
    assert job.ran_from == (job.cwd / "pymw-bundle").resolve()
    assert job.args == ["a.task"]


def _namespace_mount() -> tuple[str, ...] | None:
    """``unshare`` giving a child its own mounts (this machine's stay as they are), or None."""
    command = ("unshare", "-m") if os.geteuid() == 0 else ("unshare", "-r", "-m")
    if shutil.which("unshare") is None:
        return None
    probe = subprocess.run([*command, "sh", "-c", "mount -t tmpfs tmpfs /mnt 2>/dev/null || "
                            "mount -t tmpfs tmpfs /tmp"], capture_output=True, check=False)
    return command if probe.returncode == 0 else None


@pytest.mark.parametrize("options", ["ro", "noexec"])
def test_a_read_only_or_noexec_cache_falls_back_to_the_jobs_directory(
    node: Node, options: str
) -> None:
    unshare = _namespace_mount()
    if unshare is None:
        pytest.skip("no mount namespace here for a read-only or noexec TMPDIR")
    # TMPDIR becomes a fresh tmpfs mounted with these options, in the job's namespace alone
    wrap = (*unshare, "sh", "-c", f'mount -t tmpfs -o {options} tmpfs "$TMPDIR" && exec "$@"',
            "sh")
    for _ in range(2):
        job = node.run("x.task", wrap=wrap).ok()
        assert job.ran_from == (job.cwd / "pymw-bundle").resolve()
        assert job.args == ["x.task"]
    assert node.cache_entries() == []  # the tmpfs went with each job's namespace


def test_htcondor_s_tmpdir_in_the_scratch_directory_is_not_the_cache(node: Node) -> None:
    # HTCondor points TMPDIR at the job's scratch directory, deleted with the job: /tmp instead
    shared = Path("/tmp") / f"pymw-bundles-{os.getuid()}"
    existed = shared.exists()
    cwd = node.root / "scratch"
    try:
        job = node.run(_CONDOR_SCRATCH_DIR=str(cwd.parent), TMPDIR=str(cwd.parent / "tmp")).ok()
        if existed and job.ran_from != (shared / node.digest / "pymw-bundle").resolve():
            pytest.skip(f"{shared} is not usable here")
        assert job.ran_from == (shared / node.digest / "pymw-bundle").resolve()
        assert node.cache_entries() == []
    finally:
        shutil.rmtree(shared / node.digest, ignore_errors=True)
        if not existed:
            shutil.rmtree(shared, ignore_errors=True)


def test_pymw_bundle_cache_names_the_place(node: Node) -> None:
    place = node.root / "local-disk"
    place.mkdir()
    for _ in range(2):
        job = node.run(PYMW_BUNDLE_CACHE=str(place), _CONDOR_SCRATCH_DIR=str(node.root)).ok()
        assert job.ran_from == (place / f"pymw-bundles-{os.getuid()}" / node.digest
                                / "pymw-bundle").resolve()
    assert node.tar_runs() == 1
    assert node.cache_entries() == []


def test_a_job_running_as_its_owner_uses_the_cache(node: Node) -> None:
    ad = node.root / ".job.ad"
    ad.write_text(f'ClusterId = 7\nOwner = "{_user()}"\nProcId = 0\n')
    node.run(_CONDOR_JOB_AD=str(ad)).ok()
    assert node.run(_CONDOR_JOB_AD=str(ad)).ok().ran_from == node.cached.resolve()
    assert node.tar_runs() == 1


def _user() -> str:
    return subprocess.run(["id", "-un"], capture_output=True, text=True, check=True).stdout.strip()
