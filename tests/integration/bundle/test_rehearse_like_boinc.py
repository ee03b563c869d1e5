"""rehearse --bundle as BOINC runs it: untrusted results, retries with a task file, a checkpointing
task killed and started again in its slot (--restart-after, --checkpoint-period).

These build their own bundle into a tmp directory (not the testbed's): one for the module.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from pymw_admin.bundles import manifest as mf
from pymw_admin.interfaces.bundle import BundleInterface
from pymw_admin.runtime import Master
from pymw_admin.runtime.errors import TaskError

pytestmark = [
    pytest.mark.bundle,
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="bundle tests run on Linux"),
]

PLATFORM = mf.platform_name() if sys.platform.startswith("linux") else ""


def pymw_admin(*args: str, cwd: Path, env: dict[str, str] | None = None
               ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pymw_admin.cli", *args], cwd=cwd,
                          env={**os.environ, "COLUMNS": "400", **(env or {})},
                          capture_output=True, text=True, timeout=900)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> mf.Bundle:
    pytest.importorskip("PyInstaller")
    dist = tmp_path_factory.mktemp("dist")
    done = pymw_admin("bundle", "build", "--dist", str(dist), "--boinc-library", "no", cwd=dist)
    assert done.returncode == 0, done.stdout + done.stderr
    return mf.open_bundle(dist / PLATFORM)


class Point:
    def __init__(self, x: int) -> None:
        self.x = x


def make_point(x: int) -> Point:
    return Point(x)


def test_a_result_volunteers_could_not_return_is_refused(built: mf.Bundle) -> None:
    with Master(interface=BundleInterface(built, num_workers=1, timeout=300)) as master:
        plain = master.submit_task(divmod, input_data=(7, 2))
        point = master.submit_task(make_point, input_data=(3,))
        assert master.get_result(plain)[1] == (3, 1)
        with pytest.raises(TaskError, match=r"cannot decode the result: untrusted result "
                                            r"refers to .*; refused"):
            master.get_result(point)


# the master scripts run by `rehearse --bundle`, as a scientist would write them
DIES_ONCE = '''
import os
import sys
from pathlib import Path

from pymw_admin.runtime import Master

MARKERS = Path(sys.argv[-1])


def dies_once(marker, padding):
    if not os.path.exists(marker):
        Path(marker).touch()
        os.kill(os.getpid(), 9)  # the bundle's process dies: the master retries the task
    return len(padding)


with Master() as master:
    # 10 KB arguments: task files in the project directory, not command lines
    print(master.map(dies_once, [str(MARKERS / f"m{i}") for i in range(4)], ["x" * 10_000] * 4))
'''

COUNTS = '''
import json
import os
import sys
import time
from pathlib import Path

from pymw_admin.runtime import Master


def count_to(n):
    from pymw_admin.bundles import boinc

    saved = Path("count.txt")  # in the task's working directory: it survives a restart
    start = int(saved.read_text()) if saved.exists() else 0
    count = start
    while count < n:
        if start == 0:
            time.sleep(0.2)  # slow until restarted: the restart comes mid-count
        count += 1
        boinc.fraction_done(count / n)
        if boinc.time_to_checkpoint():
            Path("count.part").write_text(str(count))  # aside, then renamed: never half a file
            os.replace("count.part", saved)
            boinc.checkpoint_completed()
    return {"count": count, "resumed_from": start, "steps_after_restart": count - start}


with Master() as master:
    print(json.dumps(master.map(count_to, [int(sys.argv[-1])])[0]))
'''


def script(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def test_a_task_file_task_whose_process_died_is_retried(built: mf.Bundle, tmp_path: Path
                                                        ) -> None:
    markers = tmp_path / "markers"
    markers.mkdir()
    done = pymw_admin("rehearse", str(script(tmp_path, "dies.py", DIES_ONCE)), "--bundle",
                      "-n", "2", "-q", "--", str(markers), cwd=tmp_path,
                      env={"PYMW_BUNDLE": str(built.root)})
    assert done.returncode == 0, done.stderr
    assert "[10000, 10000, 10000, 10000]" in done.stdout
    assert sorted(p.name for p in markers.iterdir()) == ["m0", "m1", "m2", "m3"]


def test_a_checkpointing_task_resumes_after_a_restart(built: mf.Bundle, tmp_path: Path) -> None:
    done = pymw_admin("rehearse", str(script(tmp_path, "counts.py", COUNTS)), "--bundle", "-q",
                      "--checkpoint-period", "0", "--restart-after", "3", "--", "60",
                      cwd=tmp_path, env={"PYMW_BUNDLE": str(built.root)})
    assert done.returncode == 0, done.stderr
    got = json.loads(done.stdout.strip().splitlines()[-1])
    assert got["count"] == 60
    assert 0 < got["resumed_from"] < 60  # killed mid-count, and started from its checkpoint
    assert got["steps_after_restart"] == 60 - got["resumed_from"]


def test_without_a_restart_the_task_runs_once(built: mf.Bundle, tmp_path: Path) -> None:
    done = pymw_admin("rehearse", str(script(tmp_path, "counts.py", COUNTS)), "--bundle", "-q",
                      "--checkpoint-period", "0", "--", "3",
                      cwd=tmp_path, env={"PYMW_BUNDLE": str(built.root)})
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1]) == {
        "count": 3, "resumed_from": 0, "steps_after_restart": 3}


@pytest.mark.parametrize(("args", "message"), [
    (["--restart-after", "5"], "--restart-after goes with --bundle"),
    (["--checkpoint-period", "5"], "--checkpoint-period goes with --bundle"),
    (["--bundle", "--restart-after", "0"], "--restart-after needs more than 0 s, not 0"),
    (["--bundle", "--checkpoint-period", "-1"], "--checkpoint-period needs 0 s or more, not -1"),
])
def test_bad_restart_and_checkpoint_options_are_one_line(tmp_path: Path, args: list[str],
                                                         message: str) -> None:
    done = pymw_admin("rehearse", str(script(tmp_path, "counts.py", COUNTS)), *args, "-q",
                      cwd=tmp_path, env={"PYMW_BUNDLE": str(tmp_path / "none")})
    assert done.returncode == 2
    assert message in done.stderr
    assert "Traceback" not in done.stderr
