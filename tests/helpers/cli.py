"""One way to run the ``pymw-admin`` command from a test, and to read what it says."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path


def pymw_admin(*args: str, timeout: float = 1800, env: dict[str, str] | None = None,
               cwd: str | Path | None = None) -> subprocess.CompletedProcess[str]:
    """The installed console script beside this Python, as a user types it."""
    exe = shutil.which("pymw-admin", path=str(Path(sys.executable).parent))
    command = [exe] if exe else [sys.executable, "-c", "from pymw_admin.cli import main; main()"]
    return subprocess.run([*command, *args], capture_output=True, text=True, timeout=timeout,
                          env=env, cwd=cwd, check=False)


def cli_env() -> dict[str, str]:
    """The environment without the suite's own PYMW_ overrides."""
    return {k: v for k, v in os.environ.items() if not k.startswith("PYMW_")}


def json_out(result: subprocess.CompletedProcess[str]) -> dict:  # type: ignore[type-arg]
    assert result.returncode == 0, result.stderr + result.stdout
    return json.loads(result.stdout)  # type: ignore[no-any-return]


def one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    """The command failed with exactly one line on stderr (no traceback)."""
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    return lines[0]
