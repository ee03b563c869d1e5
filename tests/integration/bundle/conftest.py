"""Fixtures for the bundle tests: the real PyInstaller bundle (built once, cached), task files."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import testbed.bundle
import testbed.rootfs
from pymw_admin.bundles.manifest import Bundle
from pymw_admin.wire.encoding import (
    ResultRecord,
    decode_result_header,
    decode_value,
    encode_task,
)

pytestmark = pytest.mark.bundle


@pytest.fixture(scope="session")
def bundle() -> Bundle:
    if not sys.platform.startswith("linux"):
        pytest.skip("the bundle tests run on Linux")
    return testbed.bundle.up()


@pytest.fixture(scope="session")
def trixie() -> Path:
    return testbed.rootfs.trixie()


@pytest.fixture
def chroot_dir(trixie: Path) -> Iterator[Path]:
    """A scratch directory inside the Debian 13 tree, removed afterwards."""
    (trixie / "tmp").mkdir(exist_ok=True)
    path = Path(tempfile.mkdtemp(prefix="pymw-bundle-test-", dir=trixie / "tmp"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def run_bundle(bundle: Bundle) -> Callable[..., subprocess.CompletedProcess[str]]:
    def run(*args: str, cwd: Path, env: dict[str, str] | None = None,
            prefix: tuple[str, ...] = ("env", "-i")) -> subprocess.CompletedProcess[str]:
        extra = [f"{k}={v}" for k, v in (env or {}).items()]
        return subprocess.run([*prefix, *extra, str(bundle.executable), *args], cwd=cwd,
                              capture_output=True, text=True, timeout=120)

    return run


def write_task(path: Path, func: Callable[..., Any], *args: Any, task_id: str = "t1") -> None:
    path.write_bytes(encode_task(task_id, func, args))


def read_result(path: Path) -> tuple[ResultRecord, Any]:
    record = decode_result_header(path.read_bytes())
    return record, decode_value(record, trusted=True) if record.ok else None
