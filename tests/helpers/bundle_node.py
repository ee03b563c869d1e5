"""An execute node as a packed bundle worker sees it, without HTCondor: a tiny one-directory bundle
packed as the condor interface packs it, a TMPDIR, a fresh directory for each job (the job's
scratch directory) and a ``tar`` on PATH that counts its runs (each run is one unpacking)."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from pymw_admin.interfaces.kit.worker_program import worker_program

# prints the directory it runs from and its arguments, and reads a file of its bundle
MAIN = """#!/bin/sh
here=$(cd "$(dirname "$0")" && pwd -P)
echo "ran-from=$here"
for arg in "$@"; do echo "arg=$arg"; done
cat "$here/_internal/lib.txt"
"""
LIB = "the bundle's library\n"

COUNTING_TAR = """#!/bin/sh
echo run >>"$TAR_RUNS"
[ -z "${TAR_DELAY:-}" ] || sleep "$TAR_DELAY"
exec %s "$@"
"""


def fake_bundle(where: Path) -> Path:
    """A one-directory bundle: its main program and an ``_internal`` it needs."""
    bundle = where / "bundle"
    (bundle / "_internal").mkdir(parents=True)
    (bundle / "pymw-worker").write_text(MAIN)
    (bundle / "pymw-worker").chmod(0o755)
    (bundle / "_internal" / "lib.txt").write_text(LIB)
    return bundle


def pack(bundle: Path, cache_home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache_home))
    program = worker_program(bundle)
    assert program.kind == "bundle"
    return program.path


def header_digest(program: Path) -> str:
    found = re.search(rb"digest=([0-9a-f]+)", program.read_bytes()[:4096])
    assert found, "the header names no digest"
    return found.group(1).decode()


def payload(program: Path) -> bytes:
    data = program.read_bytes()
    found = re.search(rb"tail -c \+(\d+)", data[:4096])
    assert found
    return data[int(found.group(1)) - 1:]


def payload_digest(program: Path) -> str:
    return hashlib.sha256(payload(program)).hexdigest()[:32]


@dataclass
class Job:
    returncode: int
    stdout: str
    stderr: str
    cwd: Path

    @property
    def ran_from(self) -> Path:
        found = re.search(r"^ran-from=(.*)$", self.stdout, re.M)
        assert found, f"the bundle did not run: {self.stdout!r} {self.stderr!r}"
        return Path(found.group(1))

    @property
    def args(self) -> list[str]:
        return re.findall(r"^arg=(.*)$", self.stdout, re.M)

    def ok(self) -> Job:
        assert self.returncode == 0, self.stderr
        assert LIB in self.stdout  # the whole bundle was there
        return self

    @property
    def unpacked_here(self) -> bool:
        return (self.cwd / "pymw-bundle").is_dir()


@dataclass
class Node:
    root: Path
    program: Path
    env: dict[str, str] = field(default_factory=dict)
    jobs: int = 0

    @classmethod
    def make(cls, root: Path, program: Path) -> Node:
        bin_dir, tmp = root / "bin", root / "tmp"
        bin_dir.mkdir(parents=True)
        tmp.mkdir()
        real_tar = shutil.which("tar")
        assert real_tar
        (bin_dir / "tar").write_text(COUNTING_TAR % real_tar)
        (bin_dir / "tar").chmod(0o755)
        # nothing of HTCondor's or the suite's: only what a test sets
        env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "TMPDIR": str(tmp),
               "TAR_RUNS": str(root / "tar-runs"), "LANG": "C"}
        return cls(root, program, env)

    @property
    def digest(self) -> str:
        return header_digest(self.program)

    @property
    def cache(self) -> Path:
        """The per-user cache directory under TMPDIR."""
        return Path(self.env["TMPDIR"]) / f"pymw-bundles-{os.getuid()}"

    @property
    def cached(self) -> Path:
        return self.cache / self.digest / "pymw-bundle"

    def tar_runs(self) -> int:
        runs = self.root / "tar-runs"
        return len(runs.read_text().splitlines()) if runs.exists() else 0

    def add_bin(self, name: str, script: str) -> None:
        (self.root / "bin" / name).write_text(script)
        (self.root / "bin" / name).chmod(0o755)

    def new_job_dir(self) -> Path:
        self.jobs += 1
        cwd = self.root / f"job{self.jobs}"
        cwd.mkdir()
        return cwd

    def command(self, *args: str, shell: tuple[str, ...] = ()) -> list[str]:
        return [*shell, str(self.program), *args]

    def start(self, *args: str, shell: tuple[str, ...] = (), wrap: tuple[str, ...] = (),
              **env: str) -> tuple[subprocess.Popen[str], Path]:
        cwd = self.new_job_dir()
        proc = subprocess.Popen([*wrap, *self.command(*args, shell=shell)], cwd=cwd,
                                env={**self.env, **env}, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        return proc, cwd

    def run(self, *args: str, shell: tuple[str, ...] = (), wrap: tuple[str, ...] = (),
            **env: str) -> Job:
        proc, cwd = self.start(*args, shell=shell, wrap=wrap, **env)
        out, err = proc.communicate(timeout=60)
        return Job(proc.returncode, out, err, cwd)

    def cache_entries(self) -> list[str]:
        return sorted(p.name for p in self.cache.iterdir()) if self.cache.is_dir() else []


def make_node(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Node:
    """A node whose jobs run the fake bundle, packed into a cache of the test's own."""
    program = pack(fake_bundle(tmp_path / "src"), tmp_path / "cache-home", monkeypatch)
    return Node.make(tmp_path / "node", program)
