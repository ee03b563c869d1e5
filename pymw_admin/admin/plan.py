"""The provisioning plan: steps in order, each facts -> decide -> apply -> verify.

A :class:`Step` reads facts over the Host (``gather``), decides from them alone which actions bring
the host to the wanted state (``decide``: pure, table-tested), applies them, then reads the facts
again: the step is verified when ``decide`` then asks for nothing more (plus an optional extra
``check``). ``--dry-run`` stops after ``decide``. A failure names its step and what to do; since
every step starts from fresh facts, a re-run continues where the last one stopped.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from pymw_admin.admin.project import Project
from pymw_admin.admin.remote import ConnectionLost, Host
from pymw_admin.admin.server.spec import ProjectSpec
from pymw_admin.errors import PymwError, RemoteError


@dataclass(frozen=True)
class Action:
    """One change a step will make, e.g. Action("install", "apache2 cron")."""

    kind: str
    detail: str = ""

    def __str__(self) -> str:
        return f"{self.kind} {self.detail}".strip()


@dataclass
class Context:
    """What steps share: the host, the project (init-project: the wanted ProjectSpec; deploy-app
    needs only which project, where), and notes one step leaves for a later one."""

    host: Host
    spec: Project
    notes: dict[str, Any] = field(default_factory=dict)
    log: Callable[[str], None] = lambda _msg: None
    said: list[str] = field(default_factory=list)  # the running step's lines for its report

    def say(self, line: str) -> None:
        """A line for the running step's report, kept where the progress line (``log``) is
        not: what the admin may want to compare with a later run (the commit a tree is at)."""
        if line not in self.said:
            self.said.append(line)

    @property
    def wanted(self) -> ProjectSpec:
        """The wanted project of init-project's steps."""
        if not isinstance(self.spec, ProjectSpec):
            raise TypeError("init-project's steps need a ProjectSpec")
        return self.spec


@dataclass(frozen=True)
class Step:
    name: str
    title: str
    gather: Callable[[Context], Any]
    decide: Callable[[Any, Any], list[Action]]  # (facts, the context's spec)
    apply: Callable[[Context, list[Action]], None]
    hint: str = "fix the cause and run the same command again"
    check: Callable[[Context], None] | None = None  # extra verification after apply


@dataclass
class StepReport:
    name: str
    title: str
    status: str  # "already done" | "changed" | "would change" | "failed"
    actions: list[str]
    seconds: float
    error: str = ""
    notes: list[str] = field(default_factory=list)  # what the step said (Context.say)

    def as_dict(self) -> dict[str, Any]:
        return {"step": self.name, "title": self.title, "status": self.status,
                "actions": self.actions, "seconds": round(self.seconds, 3),
                **({"error": self.error} if self.error else {}),
                **({"notes": self.notes} if self.notes else {})}


class StepFailed(RemoteError):
    """A step could not converge: the message names it and what to do."""

    def __init__(self, message: str, report: StepReport) -> None:
        super().__init__(message)
        self.report = report


def run_plan(
    ctx: Context,
    steps: Sequence[Step],
    *,
    dry_run: bool = False,
    on_start: Callable[[int, Step], None] | None = None,
    on_done: Callable[[int, StepReport], None] | None = None,
) -> list[StepReport]:
    """Run ``steps`` in order; return one report a step. Raise StepFailed on the first failure."""
    reports: list[StepReport] = []
    for index, step in enumerate(steps):
        if on_start:
            on_start(index, step)
        started = time.monotonic()
        actions: list[Action] = []
        ctx.said = []
        try:
            facts = step.gather(ctx)
            actions = step.decide(facts, ctx.spec)
            if actions and not dry_run:
                step.apply(ctx, actions)
                ctx.host.forget()
                left = step.decide(step.gather(ctx), ctx.spec)
                if left:
                    raise RemoteError(
                        "still not done after the change: " + "; ".join(map(str, left))
                    )
            if step.check and not dry_run:
                step.check(ctx)
        except PymwError as exc:
            report = StepReport(step.name, step.title, "failed", [str(a) for a in actions],
                                time.monotonic() - started, str(exc), list(ctx.said))
            reports.append(report)
            if on_done:
                on_done(index, report)
            if not isinstance(exc, RemoteError):
                raise  # bad input (UsageError/ConfigError) keeps its own exit code and line
            if isinstance(exc, ConnectionLost):
                raise StepFailed(
                    f"step '{step.name}' ({step.title}) was cut short: {exc}; run the same "
                    "command again: it continues from this step and converges (every step "
                    "starts from what it finds on the host)", report) from exc
            raise StepFailed(f"step '{step.name}' ({step.title}) failed: {exc}; {step.hint}",
                             report) from exc
        status = ("would change" if dry_run else "changed") if actions else "already done"
        report = StepReport(step.name, step.title, status, [str(a) for a in actions],
                            time.monotonic() - started, notes=list(ctx.said))
        reports.append(report)
        if on_done:
            on_done(index, report)
    return reports
