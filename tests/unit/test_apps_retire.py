"""Which app versions ``deploy-app --retire-older`` deprecates."""

from __future__ import annotations

import pytest

from pymw_admin.admin.apps import retire, versions
from pymw_admin.admin.apps.spec import AppSpec
from pymw_admin.admin.server.spec import ProjectSpec

SPEC = ProjectSpec("proj", "http://h/", "h")
LINUX, ARM = "x86_64-pc-linux-gnu", "aarch64-unknown-linux-gnu"


@pytest.fixture
def app(monkeypatch: pytest.MonkeyPatch) -> AppSpec:
    wanted = AppSpec("pymw", retire_older=True)
    monkeypatch.setattr(AppSpec, "digests", lambda self: {LINUX: "new"})
    return wanted


def _facts(dirs: dict[tuple[int, str], str], live: set[tuple[int, str]]) -> retire.RetireFacts:
    return retire.RetireFacts(dirs, frozenset(live))


def test_older_versions_of_the_deployed_platform_go(app: AppSpec) -> None:
    facts = _facts({(1, LINUX): versions.marker("old"), (2, LINUX): versions.marker("new"),
                    (1, ARM): versions.marker("arm")}, {(1, LINUX), (2, LINUX), (1, ARM)})
    assert [str(a) for a in retire.decide(facts, SPEC, app)] == [f"deprecate pymw 1 {LINUX}"]


def test_before_the_new_version_exists_every_version_is_older(app: AppSpec) -> None:
    facts = _facts({(1, LINUX): versions.marker("old")}, {(1, LINUX)})
    assert [a.kind for a in retire.decide(facts, SPEC, app)] == ["deprecate"]


def test_already_deprecated_or_not_asked_changes_nothing(app: AppSpec) -> None:
    facts = _facts({(1, LINUX): versions.marker("old"), (2, LINUX): versions.marker("new")},
                   {(2, LINUX)})
    assert retire.decide(facts, SPEC, app) == []
    plain = AppSpec("pymw")
    assert retire.decide(_facts({}, {(1, LINUX)}), SPEC, plain) == []
