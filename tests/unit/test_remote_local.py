"""LocalHost, the twin of the SSH host: commands, stdin, files written with a mode, errors."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pymw_admin.admin.remote import HostSpec, LocalHost, connect
from pymw_admin.errors import RemoteError


def test_run_stdin_and_failure() -> None:
    host = connect(HostSpec("local"))
    assert isinstance(host, LocalHost)
    assert host.run("cat", stdin="hello").stdout == "hello"
    assert not host.run("exit 3", check=False).ok
    with pytest.raises(RemoteError,
                       match=r"listing failed on localhost \(exit 2\): .*No such file") as info:
        host.run("ls /nonexistent-dir", what="listing")
    assert "\n" not in str(info.value)


@pytest.mark.skipif(os.geteuid() != 0, reason="writing files owned by root needs root")
def test_write_file_mode_and_read_text(tmp_path: Path) -> None:
    host = LocalHost()
    target = str(tmp_path / "secret")
    # our own files, as ourselves (sudo=False): root may touch only root's directories
    host.write_file(target, "s3cret\n", mode=0o600, sudo=False)
    assert oct(Path(target).stat().st_mode & 0o777) == "0o600"
    assert host.read_text(target, sudo=False) == "s3cret\n"
    assert host.read_text(str(tmp_path / "none"), sudo=False) is None
    assert host.exists(target) and not host.exists(str(tmp_path / "none"))
    assert not list(tmp_path.glob("secret.*"))  # no temporary file left behind


def test_root_refuses_directories_others_can_write(tmp_path: Path) -> None:
    host = LocalHost()
    if not host.is_root():
        pytest.skip("needs root (or passwordless sudo) on this machine")
    target = str(tmp_path / "x")  # under /tmp, which everyone can write
    with pytest.raises(RemoteError, match="writable by others than root"):
        host.write_file(target, "x\n")
    with pytest.raises(RemoteError, match="writable by others than root"):
        host.read_text(target)
    assert not Path(target).exists()


def test_facts_are_cached_until_forgotten() -> None:
    host = LocalHost()
    calls = []
    assert host.fact("x", lambda: calls.append(1) or 1) == 1
    assert host.fact("x", lambda: calls.append(1) or 2) == 1
    host.forget("x")
    assert host.fact("x", lambda: 3) == 3
    assert len(calls) == 1
