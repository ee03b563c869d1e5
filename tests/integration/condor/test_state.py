"""The condor interface's state directory and its failures: what a crash, a refusal or a second
master must not lose or leave behind (review findings A4, A5, A8, A9, A14, A17)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pymw_admin.interfaces.condor import _self_extracting

pytestmark = pytest.mark.condor


def test_packing_a_worker_leaves_another_writers_partial_file_alone(tmp_path: Path) -> None:
    payload, out = tmp_path / "payload", tmp_path / "worker.run"
    payload.write_bytes(b"PAYLOAD")
    # another master packing the same worker at this moment, under the old fixed name
    other = out.with_suffix(".part")
    other.write_bytes(b"half written by another master")
    _self_extracting("#!/bin/sh\ntail -c +{offset} \"$0\"\n", payload, out)
    assert other.read_bytes() == b"half written by another master"
    assert out.read_bytes().endswith(b"PAYLOAD") and out.stat().st_mode & 0o111
    assert sorted(p.name for p in tmp_path.iterdir()) == ["payload", "worker.part", "worker.run"]
