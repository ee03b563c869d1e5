"""Shared fixtures. Engine fixtures live beside their tests (tests/integration/<engine>/)."""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from pymw_admin.runtime import Master
from tests.helpers.cli import cli_env

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"

# Tests of a real engine provision this machine (apt-get, a chroot, daemons, accounts): they run
# only when asked, as `invoke test` asks; a plain `pytest` runs the rest and skips these
ENGINE_MARKERS = ("mpi", "condor", "ssh", "boinc", "bundle")
ENGINE_DIRS = tuple(f"tests/integration/{name}/" for name in
                    ("admin", "boinc", "bundle", "condor", "mpi", "runs"))
NOT_ASKED = ("not run: they provision this machine's testbed (apt-get, a chroot, daemons); run "
             "them with `invoke test`, or `pytest --engines` as root")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--engines", action="store_true", default=False,
                     help="also run the tests of real engines (MPI, HTCondor, the sshd host, "
                          "BOINC, bundles), bringing the testbed up on this machine as needed")


def is_engine_test(item: pytest.Item) -> bool:
    where = Path(str(item.path)).relative_to(ROOT).as_posix()
    return where.startswith(ENGINE_DIRS) or any(
        item.get_closest_marker(name) for name in ENGINE_MARKERS)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Without --engines, the engine tests are set aside, and one line says so and how."""
    if config.getoption("--engines"):
        return
    engine = [item for item in items if is_engine_test(item)]
    if engine:
        items[:] = [item for item in items if not is_engine_test(item)]
        config.hook.pytest_deselected(items=engine)
        config.stash[_SET_ASIDE] = len(engine)


_SET_ASIDE = pytest.StashKey[int]()


def pytest_report_collectionfinish(config: pytest.Config) -> str | None:
    count = config.stash.get(_SET_ASIDE, 0)
    return f"{count} engine tests {NOT_ASKED}" if count else None


def default_sigint() -> None:
    """``preexec_fn`` for a child a test sends SIGINT to: Ctrl-C's default handling, whatever
    our launcher set (``cmd &`` and nohup start us with SIGINT ignored, and a child started
    with it ignored never raises KeyboardInterrupt)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.fixture
def master() -> Iterator[Master]:
    with Master("local", num_workers=2) as m:
        yield m


@pytest.fixture
def python() -> str:
    return sys.executable


@pytest.fixture
def clean_env() -> dict[str, str]:
    """The environment for a subprocess master, without our own overrides leaking in."""
    return cli_env()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter,
                            config: pytest.Config) -> None:
    """The order's seed again at the end, where a failure is read (the header is far up, and
    hidden by -q): the same order comes back with it."""
    if config.pluginmanager.hasplugin("randomly"):
        seed = config.getoption("randomly_seed")
        terminalreporter.write_line(f"random order: repeat it with --randomly-seed={seed}")


# the owner accounts the suite provisions: nothing in their homes may be root's after a run (a
# root-owned ~/.pymw-admin or ~/projects stops the owner; tests create such files as the owner)
OWNER_ACCOUNTS = ("boincadm", "boincpymw", "pymwrun")


def _roots_files(home: Path, limit: int = 5) -> list[str]:
    found: list[str] = []
    for top, dirs, files in os.walk(home):  # symbolic links are not followed
        for name in [*dirs, *files]:
            path = os.path.join(top, name)
            try:
                if os.lstat(path).st_uid == 0:
                    found.append(path)
            except FileNotFoundError:
                continue  # removed while we looked (a daemon's temporary file)
            if len(found) >= limit:
                return found
    return found


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Fail a run whose tests left root-owned files in a project owner's home."""
    if os.geteuid() != 0 or not session.config.getoption("--engines"):
        return
    found: list[str] = []
    for user in OWNER_ACCOUNTS:
        home = Path(f"/home/{user}")
        if home.is_dir():
            found += ([str(home)] if home.stat().st_uid == 0 else []) + _roots_files(home)
    if found:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.ensure_newline()
            reporter.write_line("root-owned files in project owners' homes (a test must make "
                                "them as the owner): " + ", ".join(found), red=True)
        if exitstatus == 0:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED
