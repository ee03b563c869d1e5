"""The runner run.sh starts a master script with: ``python SCRIPT`` to the script, but a module
its imports miss is one line in the run's log."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from pymw_admin.admin import runs
from pymw_admin.runtime import script_runner

RUNNER = [sys.executable, "-u", "-m", script_runner.__name__]


def _run(directory: Path, *argv: str, runner: bool = True,
         env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    command = [*RUNNER, *argv] if runner else [sys.executable, "-u", *argv]
    return subprocess.run(command, cwd=directory, capture_output=True, text=True, timeout=60,
                          env=env, check=False)


def _one_line(done: subprocess.CompletedProcess[str], module: str) -> str:
    assert done.returncode == 1
    [line] = done.stderr.splitlines()
    assert line.startswith(f"error: the master script needs module '{module}', which is not "
                           "installed on the server: ")
    return line


def test_a_module_the_script_imports_and_the_server_lacks_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "master.py").write_text(
        "import os\nprint('starting', flush=True)\nimport somemodule_not_installed\n")
    done = _run(tmp_path, "master.py", "-a", "tag=x")
    line = _one_line(done, "somemodule_not_installed")
    # what to do about it: what run uploads, or the run environment's own pip
    assert "somemodule_not_installed.py" in line and "`pymw-admin run` uploads it" in line
    assert f"{sys.executable} -m pip install" in line
    assert done.stdout == "starting\n"


def test_so_is_one_a_local_module_imports_at_its_top(tmp_path: Path) -> None:
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text("from pkg import helper\n")
    (tmp_path / "pkg" / "helper.py").write_text("import json\nimport missing_here.sub\n")
    (tmp_path / "master.py").write_text("import pkg\n")
    _one_line(_run(tmp_path, "master.py"), "missing_here")


@pytest.mark.parametrize(("files", "where"), [
    # imported when a function runs: where it happened matters
    ({"run/master.py": "def main():\n    import not_there\n\nmain()\n"}, 'line 2, in main'),
    # an installed package's own import: its traceback says which package is broken
    ({"run/master.py": "import broken_pkg\n", "site/broken_pkg.py": "import not_there\n"},
     "broken_pkg.py\", line 1"),
])
def test_other_missing_modules_keep_their_traceback(tmp_path: Path, files: dict[str, str],
                                                    where: str) -> None:
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    env = {"PYTHONPATH": str(tmp_path / "site"), "PATH": "/usr/bin:/bin"}
    done = _run(tmp_path / "run", "master.py", env=env)
    assert done.returncode == 1
    assert done.stderr.startswith("Traceback (most recent call last):\n")
    assert where in done.stderr
    assert done.stderr.endswith("ModuleNotFoundError: No module named 'not_there'\n")
    assert done.stderr == _run(tmp_path / "run", "master.py", runner=False, env=env).stderr


@pytest.mark.parametrize("source", [
    "def f():\n    raise ValueError('bad input')\n\nf()\n",  # a traceback, the runner's frames out
    "def (:\n",  # not Python: no traceback at all
    "import sys\nsys.exit(7)\n",
    "import sys\nsys.exit('a message')\n",
    "raise ModuleNotFoundError('said by the script')\n",  # names no module: as raised
])
def test_anything_else_ends_as_python_script_ends(tmp_path: Path, source: str) -> None:
    (tmp_path / "master.py").write_text(source)
    through, plain = _run(tmp_path, "master.py"), _run(tmp_path, "master.py", runner=False)
    assert (through.returncode, through.stdout, through.stderr) == (
        plain.returncode, plain.stdout, plain.stderr)
    assert script_runner.__name__ not in through.stderr


def test_the_script_sees_what_python_script_gives_it(tmp_path: Path) -> None:
    (tmp_path / "lib.py").write_text("X = 'local'\n")
    (tmp_path / "master.py").write_text(
        "import atexit, pickle, sys, lib\n"
        "def f(): return 1\n"
        "atexit.register(lambda: print('atexit', sys.modules['__main__'].f.__module__))\n"
        "print(__name__, __file__, sys.argv, sys.path[0], lib.X)\n"
        "print(pickle.loads(pickle.dumps(f))())\n")
    through = _run(tmp_path, "master.py", "-a", "tag=t", "--", "x")
    assert through.returncode == 0, through.stderr
    assert through.stdout == _run(tmp_path, "master.py", "-a", "tag=t", "--", "x",
                                  runner=False).stdout
    assert "['master.py', '-a', 'tag=t', '--', 'x']" in through.stdout  # its tag comes from it


def test_run_sh_starts_the_script_through_the_runner(tmp_path: Path) -> None:
    """The wrapper as a run gets it: the log holds the one line, exit the status."""
    (tmp_path / "master.py").write_text("import somemodule_not_installed\n")
    (tmp_path / "run.sh").write_text(runs.run_script("master.py", [], sys.executable,
                                                     str(tmp_path)))
    subprocess.run(["sh", "run.sh"], cwd=tmp_path, timeout=60, check=True)
    assert (tmp_path / "exit").read_text() == "1\n"
    _one_line(subprocess.CompletedProcess([], 1, "", (tmp_path / "log").read_text()),
              "somemodule_not_installed")
