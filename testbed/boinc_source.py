"""Every BOINC tree the testbed needs, from one git source, checked out once into the cache.

    $PYMW_BOINC_GIT (a URL or a bundle file)   --git fetch (tags)-->  CACHE/boinc.git (bare)
    else BOINC's public repository (one try)                            |  git archive TAG
                                                                        v
                                             CACHE/boinc-trees/<commit>/  (built in place)

``.ci/run`` points $PYMW_BOINC_GIT at ``../shared/boinc/boinc-server.bundle`` when it is there.
$PYMW_BOINC_SRC and $PYMW_BOINC_SRC_OLD still name ready trees and win over all of this. A tree
is named by its tag's commit, so init-project's in-place build is reused by every later run, and
a new commit gets a new tree. ``invoke testbed.up`` fetches it (seconds from a bundle); a source
that cannot be had is said once, in one line, and the tests that need it skip with that line.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from testbed.cache import CACHE

PUBLIC = "https://github.com/BOINC/boinc.git"
RELEASE = "server_release/1.6/1.6.2"  # what the tests build and run
OLDER = "server_release/1.6/1.6.1"  # what the upgrade test starts from
TAGS = (RELEASE, OLDER)
PUBLIC_TIMEOUT_S = 20.0  # one short try: a machine without the internet says no fast or hangs

BARE = CACHE / "boinc.git"
TREES = CACHE / "boinc-trees"

_failure: str | None = None  # why the source could not be had, once per process


def origin() -> str:
    """The git source, in the documented order (the public repository last)."""
    return os.environ.get("PYMW_BOINC_GIT") or PUBLIC


def _git(*args: str, timeout: float | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", *args], capture_output=True, text=True, check=False,
                          timeout=timeout, env=dict(os.environ, GIT_TERMINAL_PROMPT="0"))


def _has_tags(repo: Path) -> bool:
    if not (repo / "HEAD").is_file():
        return False
    listed = _git("-C", str(repo), "tag", "--list", *TAGS).stdout.split()
    return all(tag in listed for tag in TAGS)


def bare_repository() -> Path | None:
    """CACHE/boinc.git holding the release tags, fetched from ``origin()`` the first time."""
    global _failure
    if _has_tags(BARE):
        return BARE
    if _failure is not None:
        return None
    source = origin()
    if "://" not in source and not Path(source).exists():
        _failure = f"PYMW_BOINC_GIT names {source}, which does not exist"
        return None
    partial = BARE.with_name("boinc.git.partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.parent.mkdir(parents=True, exist_ok=True)
    _git("init", "-q", "--bare", str(partial))
    refspecs = [f"refs/tags/{tag}:refs/tags/{tag}" for tag in TAGS]
    timeout = PUBLIC_TIMEOUT_S if source == PUBLIC else None
    try:
        # only the two release tags, shallow: the public history is large and never read
        fetched = _git("-C", str(partial), "fetch", "-q", "--depth", "1", source, *refspecs,
                       timeout=timeout)
    except subprocess.TimeoutExpired:
        fetched = None
    if fetched is None or fetched.returncode != 0 or not _has_tags(partial):
        shutil.rmtree(partial, ignore_errors=True)
        said = (fetched.stderr.strip().splitlines() or ["no answer"])[-1] if fetched else (
            f"no answer in {PUBLIC_TIMEOUT_S:.0f} s")
        _failure = (f"cannot fetch BOINC's tags {', '.join(TAGS)} from {source} ({said}); set "
                    "PYMW_BOINC_GIT to a git URL or bundle file that has them")
        return None
    shutil.rmtree(BARE, ignore_errors=True)
    partial.rename(BARE)
    return BARE


def tree(tag: str) -> Path | None:
    """The tag's tree, checked out once under CACHE/boinc-trees/ (named by the tag's commit)."""
    repo = bare_repository()
    if repo is None:
        return None
    commit = _git("-C", str(repo), "rev-parse", f"{tag}^{{commit}}").stdout.strip()
    if not commit:
        return None
    where = TREES / commit[:16]
    if (where / ".pymw-testbed-checkout").is_file():
        return where
    partial = where.with_name(where.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    archive = subprocess.Popen(["git", "-C", str(repo), "archive", commit],
                               stdout=subprocess.PIPE)
    subprocess.run(["tar", "-x", "-C", str(partial)], stdin=archive.stdout, check=True)
    if archive.wait() != 0:
        raise RuntimeError(f"git archive of {tag} ({commit}) from {repo} failed")
    (partial / ".pymw-testbed-checkout").write_text(f"{tag} {commit}\n")
    shutil.rmtree(where, ignore_errors=True)
    partial.rename(where)
    return where


def missing_reason() -> str:
    return _failure or f"no BOINC source with the tags {', '.join(TAGS)} from {origin()}"


def up() -> str:
    trees = [tree(tag) for tag in TAGS]
    if None in trees:
        return missing_reason()
    return ", ".join(f"{tag} at {path}" for tag, path in zip(TAGS, trees, strict=True))


def down() -> None:
    """Nothing runs from the source."""


def status() -> str:
    if not _has_tags(BARE):
        return f"no BOINC repository cached yet (source: {origin()})"
    return f"BOINC repository at {BARE} (source: {origin()})"
