"""Developer and CI tasks (invoke): ``invoke test``, ``invoke testbed.up``, ``invoke bench``...

``invoke test`` is the README's test command and what CI runs: it brings the testbed up (each
engine idempotently, cached outside the repository), lints, type-checks and runs pytest.
"""

from __future__ import annotations

import importlib
import shutil
import sys
from pathlib import Path

from invoke import Collection, Context, task

# the engines the testbed provisions, in the order they come up
ENGINES: list[str] = ["boinc_source", "bundle", "foreign", "condor", "mpi", "ssh_host",
                      "second_host", "acme", "boinc_client"]


def _engine(name: str):  # type: ignore[no-untyped-def]
    return importlib.import_module(f"testbed.{name}")


@task
def up(c: Context) -> None:
    """Provision every testbed engine (idempotent; cached)."""
    for name in ENGINES:
        print(f"testbed: {name} ...", flush=True)
        _engine(name).up()


@task
def down(c: Context) -> None:
    """Stop the testbed's services (what they built stays cached). Every engine is asked, even
    after one fails: a chroot left mounted in the cache is what ``rm -rf`` of the cache must
    never meet."""
    failed = []
    for name in reversed(ENGINES):
        try:
            _engine(name).down()
        except Exception as exc:  # say it, go on to the next engine
            print(f"testbed: {name} down failed: {exc}", file=sys.stderr)
            failed.append(name)
    if failed:
        raise SystemExit(f"testbed: could not stop {', '.join(failed)}")


@task
def status(c: Context) -> None:
    """Say what each testbed engine is doing."""
    for name in ENGINES:
        print(f"{name}: {_engine(name).status()}")


@task
def lint(c: Context) -> None:
    """ruff, mypy and the layer contracts (pyproject.toml's [tool.importlinter])."""
    c.run(f"{sys.executable} -m ruff check pymw_admin tests testbed benchmarks examples tasks.py")
    c.run(f"{sys.executable} -m mypy")
    c.run(str(Path(sys.executable).with_name("lint-imports")))


@task(help={"k": "pytest -k expression", "unit": "only the fast unit tests"})
def test(c: Context, k: str = "", unit: bool = False) -> None:
    """Bring the testbed up, lint, and run the whole test suite, engine tests included (the
    slowest 25 tests are listed at the end: where a run's time goes)."""
    if not unit:
        up(c)
    lint(c)
    target = "tests/unit" if unit else "tests --engines --durations=25"
    select = f" -k {k!r}" if k else ""
    c.run(f"{sys.executable} -m pytest {target}{select}", pty=False)


@task
def bench(c: Context) -> None:
    """Run every benchmark; each prints its ratio against the named peer. All of them run, then
    the task ends non-zero naming each one that missed its target or broke."""
    failed: list[str] = []
    # start-up first: it times single processes, so nothing else may still be winding down
    for script in ("bundle_startup", "local_throughput", "mpi_throughput", "condor_overhead",
                   "untrusted_decode"):
        if not c.run(f"{sys.executable} benchmarks/{script}.py", warn=True).ok:
            failed.append(script)
    failed += _bench_boinc(c)
    if failed:
        raise SystemExit(f"benchmarks that missed a target or failed: {', '.join(failed)}")
    print("every benchmark met its target")


def _bench_boinc(c: Context) -> list[str]:
    """The BOINC benchmarks run on the server as the project owner, on the test project that
    the BOINC end-to-end tests deploy (``invoke test`` makes it); returns those that failed."""
    from testbed.boinc_project import OWNER, PROJECT_DIR, WORK

    python = WORK / "master-venv" / "bin" / "python"
    if not (PROJECT_DIR / "config.xml").exists() or not python.exists():
        print(f"boinc benchmarks: no deployed test project at {PROJECT_DIR} (run `invoke test` "
              "first)")
        return ["boinc_create_work", "boinc_scale"]
    # the owner runs copies: the checkout may be in a directory it cannot read
    bench = WORK / "bench"
    bench.mkdir(exist_ok=True)
    for name in ("_common.py", "boinc_create_work.py", "boinc_scale.py", "boinc_latency.py"):
        shutil.copy(Path("benchmarks") / name, bench / name)
    c.run(f"chmod -R a+rX {bench}")
    failed = []
    as_owner = f"sudo -n -u {OWNER} {python}"
    if not c.run(f"{as_owner} {bench / 'boinc_create_work.py'} -p {PROJECT_DIR}", warn=True).ok:
        failed.append("boinc_create_work")
    # 1-3 on the app with no versions; 4 through the attached client and the deployed app
    if not c.run(f"{as_owner} {bench / 'boinc_scale.py'} -p {PROJECT_DIR} --latency",
                 warn=True).ok:
        failed.append("boinc_scale")
    return failed


testbed = Collection("testbed", up, down, status)
ns = Collection(test, lint, bench, testbed)
