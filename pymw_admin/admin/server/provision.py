"""The whole init-project plan, and the subset that needs no BOINC source tree."""

from __future__ import annotations

from pymw_admin.admin.plan import Step
from pymw_admin.admin.server import (
    acme,
    apache,
    boinc_build,
    cron,
    daemons,
    database,
    ops_password,
    os_check,
    owner,
    packages,
    project,
    verify,
)

STEPS: tuple[Step, ...] = (
    os_check.STEP, packages.STEP, owner.STEP, database.STEP, boinc_build.STEP, project.STEP,
    apache.STEP, acme.STEP, ops_password.STEP, cron.STEP, daemons.STEP, verify.STEP,
)
# the host-level steps (no BOINC tree needed): what CI exercises everywhere
BASE_STEPS: tuple[Step, ...] = (
    os_check.STEP, packages.STEP, owner.STEP, database.STEP, apache.STEP, cron.STEP,
)


def steps_named(names: list[str]) -> list[Step]:
    by_name = {s.name: s for s in STEPS}
    return [by_name[n] for n in names]
