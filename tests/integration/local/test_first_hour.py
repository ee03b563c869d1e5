"""What a new user meets in the first hour, said plainly: a missing engine module with the line
that installs it, a rehearsed script's own exit message and traceback (not ours), --debug where
it is typed, the local interface that rehearse promises, and help that reads as help."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import EXAMPLES
from tests.helpers.cli import pymw_admin

WITHOUT_MPI4PY = """
import runpy, sys
sys.modules["mpi4py"] = None  # as on a machine where mpi4py is not installed
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def test_mpi_without_mpi4py_is_one_line_with_the_hint(tmp_path: Path,
                                                      clean_env: dict[str, str]) -> None:
    runner = tmp_path / "without_mpi4py.py"
    runner.write_text(WITHOUT_MPI4PY)
    out = subprocess.run([sys.executable, str(runner), str(EXAMPLES / "monte_pi.py"), "-i", "mpi"],
                         capture_output=True, text=True, timeout=60, env=clean_env, check=False)
    assert out.returncode == 3
    assert out.stderr.strip() == ("error: interface 'mpi' needs the Python module 'mpi4py': "
                                  "pip install 'pymw-admin[mpi]'")


def test_rehearse_shows_the_scripts_exit_message(tmp_path: Path,
                                                 clean_env: dict[str, str]) -> None:
    script = tmp_path / "gives_up.py"
    script.write_text("import sys\nsys.exit('cannot read the samples in data/')\n")
    out = pymw_admin("rehearse", str(script), "-q", env=clean_env)
    assert out.returncode == 1
    assert out.stderr.strip() == "cannot read the samples in data/"


RAISES = """\
def check(value):
    raise ValueError(f"bad value {value}")


def main():
    check(7)


main()
"""


def _frames(stderr: str) -> list[str]:
    return [line.strip() for line in stderr.splitlines() if line.strip().startswith("File ")]


def test_rehearse_shows_the_scripts_own_traceback(tmp_path: Path,
                                                  clean_env: dict[str, str]) -> None:
    script = tmp_path / "raises.py"
    script.write_text(RAISES)
    out = pymw_admin("rehearse", str(script), "-q", env=clean_env)
    assert out.returncode == 1
    assert out.stderr.startswith("Traceback (most recent call last):"), out.stderr
    assert out.stderr.strip().splitlines()[-1] == "ValueError: bad value 7"
    assert _frames(out.stderr) == [f'File "{script}", line 9, in <module>',
                                   f'File "{script}", line 6, in main',
                                   f'File "{script}", line 2, in check']


def test_rehearse_shows_a_failed_tasks_remote_traceback(tmp_path: Path,
                                                        clean_env: dict[str, str]) -> None:
    script = tmp_path / "task_fails.py"
    script.write_text(
        "from pymw_admin.runtime import Master\n"
        "\n"
        "def ratio(a, b):\n"
        "    return a / b\n"
        "\n"
        "with Master() as m:\n"
        "    m.get_result(m.submit_task(ratio, (1, 0)))\n"
    )
    out = pymw_admin("rehearse", str(script), "-q", env=clean_env)
    assert out.returncode == 1
    remote, _, local = out.stderr.partition("The above exception was the direct cause")
    assert "in ratio" in remote  # the worker's frames
    assert "ZeroDivisionError: division by zero" in remote
    assert _frames(local) == [f'File "{script}", line 7, in <module>']  # none of ours
    assert "TaskError" in local.strip().splitlines()[-1]


def test_debug_is_taken_after_the_command_name(tmp_path: Path,
                                               clean_env: dict[str, str]) -> None:
    script = tmp_path / "raises.py"
    script.write_text(RAISES)
    out = pymw_admin("rehearse", "--debug", str(script), "-q", env=clean_env)
    assert out.returncode == 1
    assert any("rehearse.py" in frame for frame in _frames(out.stderr))  # everything shown
    missing = pymw_admin("runs", "--debug", "--project-file", str(tmp_path / "none.toml"),
                         env=clean_env)
    assert missing.returncode == 2
    assert "No such option" not in missing.stderr
    assert "Traceback (most recent call last)" in missing.stderr


WHICH = """
from pymw_admin.runtime import Master, options
print("FROM-ARGS", options.interface_from_args().name)
with Master() as m:
    print("PLAIN", m.interface.name)
"""


def test_rehearse_runs_on_the_local_interface(tmp_path: Path, clean_env: dict[str, str]) -> None:
    script = tmp_path / "which.py"
    script.write_text(WHICH)
    env = dict(clean_env, PYMW_INTERFACE="mpi")  # left over in the user's shell
    out = pymw_admin("rehearse", str(script), "-q", "-n", "1", env=env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["FROM-ARGS", "local", "PLAIN", "local"]
    refused = pymw_admin("rehearse", str(script), "-q", "--", "-i", "mpi", env=env)
    assert refused.returncode == 2
    assert refused.stderr.strip() == (
        "error: rehearse runs the script on the local interface, so it takes no '-i mpi'; "
        f"run `python {script} -i mpi` to use another")


def test_no_arguments_prints_help_and_no_error_line() -> None:
    out = pymw_admin()
    assert "Usage: pymw-admin [OPTIONS] COMMAND [ARGS]..." in out.stdout
    assert "error" not in out.stderr
    assert out.stderr.strip() == ""


@pytest.mark.parametrize(("args", "usage"), [
    (["rehearse", "--help"], "Usage: pymw-admin rehearse [OPTIONS] SCRIPT"),
    (["run", "--help"], "Usage: pymw-admin run [OPTIONS] SCRIPT [ARGS...]"),
    (["--help"], "Usage: pymw-admin [OPTIONS] COMMAND [ARGS]..."),
    (["bundle", "build", "--help"], "Usage: pymw-admin bundle build [OPTIONS]"),
])
def test_help_reads_as_help(args: list[str], usage: str, clean_env: dict[str, str]) -> None:
    out = pymw_admin(*args, env=dict(clean_env, COLUMNS="120"))
    assert out.returncode == 0
    assert usage in out.stdout
    assert "<bool>" not in out.stdout
    assert "{" not in out.stdout.split("Usage:")[1].splitlines()[0]
