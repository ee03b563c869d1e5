"""init-project's default kind of BOINC source, a git URL with a release tag, against a git
repository the test host serves itself: an absent tree is never "already done"; it is fetched at
the tag and built, and only a built tree is reused."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from pymw_admin.admin.plan import Context, run_plan
from pymw_admin.admin.remote import Host
from pymw_admin.admin.server import boinc_build
from pymw_admin.admin.server.spec import DEFAULT_BOINC_SOURCE, ProjectSpec
from testbed import boinc_git, ssh_host

pytestmark = pytest.mark.ssh


@pytest.fixture(scope="module")
def served() -> str:
    if boinc_git.find() is None:
        pytest.skip(boinc_git.missing_reason())
    return boinc_git.serve()


def _spec(url: str, ref: str) -> ProjectSpec:
    return ProjectSpec("cigit", "http://h/", "h", boinc_source=f"{url}@{ref}")


def _tree(spec: ProjectSpec) -> Path:
    return Path(boinc_build.tree_dir(boinc_build.parse_source(spec.boinc_source)))


def test_the_default_is_a_git_url_with_a_release_tag() -> None:
    source = boinc_build.parse_source(DEFAULT_BOINC_SOURCE)
    assert source.kind == "git" and source.ref.startswith("server_release/")


def test_an_absent_tree_is_fetched_at_its_tag(vm: ssh_host.VM, vm_host: Host,
                                              served: str) -> None:
    spec = _spec(served, "server_release/1.6/1.6.1")
    tree = _tree(spec)
    shutil.rmtree(tree, ignore_errors=True)
    try:
        [plan] = run_plan(Context(vm_host, spec), [boinc_build.STEP], dry_run=True)
        assert plan.status == "would change"
        assert [a.split()[0] for a in plan.actions] == ["fetch", "autosetup", "configure",
                                                        "build"]
        boinc_build.apply(Context(vm_host, spec),
                          boinc_build.decide(boinc_build.gather(Context(vm_host, spec)), spec)[:1])
        described = subprocess.run(["git", "-C", str(tree), "describe", "--tags"],
                                   capture_output=True, text=True, check=False).stdout.strip()
        assert described == "server_release/1.6/1.6.1"
        left = boinc_build.decide(boinc_build.gather(Context(vm_host, spec)), spec)
        assert [a.kind for a in left] == ["autosetup", "configure", "build"]
    finally:
        shutil.rmtree(tree, ignore_errors=True)


@pytest.mark.boinc
def test_the_release_is_built_and_then_reused(vm: ssh_host.VM, vm_host: Host,
                                              served: str) -> None:
    """Builds the release once on a machine (minutes); later runs check it is reused as is."""
    spec = _spec(served, boinc_git.RELEASE)
    [report] = run_plan(Context(vm_host, spec), [boinc_build.STEP])
    tree = _tree(spec)
    assert all((tree / built).exists() for built in boinc_build.BUILT), report
    vm_host.forget()
    [again] = run_plan(Context(vm_host, spec), [boinc_build.STEP])
    assert again.status == "already done"
