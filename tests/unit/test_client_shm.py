"""The client's shared-memory protocol against a memory laid out as the C client's SHARED_MEM.

The real client exercises the same code in tests/integration/boinc (fraction done shown by
boinccmd) and tests/integration/bundle (a Windows bundle under wine, a Linux client).
"""

from __future__ import annotations

import mmap
from pathlib import Path

import pytest

from pymw_admin.bundles import boinc, client_shm
from pymw_admin.bundles.slot import init_data_xml

SIZE = client_shm.SHMEM_SIZE


def client_put(memory: mmap.mmap, channel: int, text: str) -> None:
    """What MSG_CHANNEL::send_msg does on the client's side."""
    start = channel * client_shm.CHANNEL_SIZE
    data = text.encode() + b"\0"
    memory[start + 1:start + 1 + len(data)] = data
    memory[start] = 1


def client_get(memory: mmap.mmap, channel: int) -> str | None:
    start = channel * client_shm.CHANNEL_SIZE
    if memory[start] == 0:
        return None
    text = memory[start + 1:start + client_shm.CHANNEL_SIZE].split(b"\0", 1)[0].decode()
    memory[start] = 0
    return text


@pytest.fixture
def slot(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("PYMW_BOINC_API", raising=False)
    (tmp_path / "init_data.xml").write_bytes(init_data_xml(slot=0, wu_name="wu"))
    (tmp_path / client_shm.MMAPPED_FILE_NAME).write_bytes(b"\0" * SIZE)
    # stderr to stderr.txt is a process-wide change: tested in a child process below
    monkeypatch.setattr(boinc, "_redirect_stderr", lambda: None)
    boinc._reset()
    yield tmp_path
    boinc._reset()


def client_view(slot: Path) -> mmap.mmap:
    f = (slot / client_shm.MMAPPED_FILE_NAME).open("r+b")
    return mmap.mmap(f.fileno(), SIZE)


def test_attached_when_the_client_made_the_file(slot: Path) -> None:
    assert boinc.mode() == "client"
    assert not boinc.is_standalone()
    (slot / client_shm.MMAPPED_FILE_NAME).write_bytes(b"\0" * 10)  # too small: not a client's
    boinc._reset()
    assert boinc.mode() == "slot"


def test_status_reports_and_heartbeat(slot: Path) -> None:
    view = client_view(slot)
    channel = client_shm.attach({})
    assert channel is not None
    channel.fraction_done = 0.25
    channel.tick(send_status=True)
    status = client_get(view, client_shm.APP_STATUS)
    assert status is not None and "<fraction_done>2.500000e-01</fraction_done>" in status
    assert "<current_cpu_time>" in status and "<checkpoint_cpu_time>" in status
    # the client has not read the last report: the next one waits (as send_msg returns false)
    channel.tick(send_status=True)
    channel.tick(send_status=True)
    assert client_get(view, client_shm.APP_STATUS) is not None
    assert client_get(view, client_shm.APP_STATUS) is None
    client_put(view, client_shm.HEARTBEAT, "<heartbeat/>")
    channel.last_heartbeat = 0.0
    channel.tick(send_status=False)
    assert channel.last_heartbeat > 0.0
    assert view[client_shm.HEARTBEAT * client_shm.CHANNEL_SIZE] == 0  # read and cleared


def test_suspend_then_resume(slot: Path) -> None:
    view = client_view(slot)
    channel = client_shm.attach({})
    assert channel is not None
    client_put(view, client_shm.PROCESS_CONTROL_REQUEST, "<suspend/>")
    # the resume is waiting already: the hold loop reads it on its first round
    import threading

    def resume_soon() -> None:
        import time

        time.sleep(0.3)
        client_put(view, client_shm.PROCESS_CONTROL_REQUEST, "<resume/>")

    threading.Thread(target=resume_soon).start()
    channel.tick(send_status=False)
    assert not channel.suspended


def test_long_messages_are_cut_to_the_channel(slot: Path) -> None:
    view = client_view(slot)
    channel = client_shm.attach({})
    assert channel is not None
    assert channel.send_msg(client_shm.TRICKLE_UP, "x" * 5000)
    text = client_get(view, client_shm.TRICKLE_UP)
    assert text is not None and len(text) == client_shm.CHANNEL_SIZE - 2


def test_finish_reports_done_and_writes_the_finish_file(slot: Path) -> None:
    view = client_view(slot)
    boinc.init()
    boinc.fraction_done(0.5)
    with pytest.raises(SystemExit):
        boinc.finish(0)
    status = client_get(view, client_shm.APP_STATUS)
    assert status is not None and "<fraction_done>1.000000e+00</fraction_done>" in status
    assert (slot / "boinc_finish_called").read_text() == "0\n"


def test_no_client_memory_on_windows_names_means_slot(slot: Path) -> None:
    (slot / client_shm.MMAPPED_FILE_NAME).unlink()
    assert client_shm.attach({"shmem_seg_name": "-1"}) is None
    assert boinc.mode() == "slot"


def test_init_sends_stderr_to_the_slot(tmp_path: Path) -> None:
    """As boinc_init's diagnostics: the client uploads the slot's stderr.txt."""
    import subprocess
    import sys

    (tmp_path / "init_data.xml").write_bytes(init_data_xml(slot=0, wu_name="wu"))
    (tmp_path / client_shm.MMAPPED_FILE_NAME).write_bytes(b"\0" * SIZE)
    code = ("import os, sys\nfrom pymw_admin.bundles import boinc\nboinc.init()\n"
            "print('from python', file=sys.stderr)\nos.write(2, b'from fd 2\\n')\n"
            "boinc.finish(0)\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    text = (tmp_path / "stderr.txt").read_text()
    assert "from python" in text and "from fd 2" in text
    assert (tmp_path / "boinc_finish_called").read_text() == "0\n"
