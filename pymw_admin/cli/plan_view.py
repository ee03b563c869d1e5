"""Running a provisioning plan for the CLI: a progress line per step, or JSON on failure.

init-project and deploy-app show their plans the same way; the step count comes from the plan.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from rich.console import Console
from rich.markup import escape

from pymw_admin.admin.plan import Context, Step, StepFailed, StepReport, run_plan

MARK = {"already done": "[green]✓[/]", "changed": "[yellow]✎[/]",
        "would change": "[cyan]→[/]", "failed": "[bold red]✗[/]"}


def report_line(index: int, total: int, report: StepReport) -> str:
    """One finished step as rich markup; the step's own text is escaped (it may hold paths)."""
    detail = ("; ".join(report.actions) if report.actions and report.status != "already done"
              else "")
    notes = "; ".join(report.notes)
    return (f"{MARK[report.status]} \\[{index + 1}/{total}] {escape(report.title)}: "
            f"{report.status}" + (f" — {escape(detail)}" if detail else "")
            + (f" — {escape(notes)}" if notes else "")
            + f" [dim]({report.seconds:.1f} s)[/]")


def print_outcome(console: Console, headline: str, where: str, changes: int, seconds: float, *,
                  dry_run: bool, unchanged: str, note: str = "") -> None:
    """The closing line of init-project and deploy-app: what a dry run would change, what
    changed, or that nothing needed to."""
    if dry_run:
        console.print(f"dry run: {changes} change(s) would be made; nothing was changed")
    elif changes:
        console.print(f"[bold green]{headline}[/]{where} ({changes} change(s), {seconds:.1f} s)"
                      f"{note}")
    else:
        console.print(f"[bold green]{headline}[/]{where}: {unchanged}, nothing changed "
                      f"({seconds:.1f} s)")


def run(ctx: Context, steps: Sequence[Step], console: Console, *, dry_run: bool,
        quiet: bool) -> list[StepReport]:
    """Run ``steps``; ``quiet`` (--json) prints nothing but a failed step's JSON."""
    if quiet:
        try:
            return run_plan(ctx, steps, dry_run=dry_run)
        except StepFailed as exc:
            print(json.dumps({"error": str(exc), "step": exc.report.as_dict()}))
            raise
    total = len(steps)
    status = console.status("")

    def start(index: int, step: Step) -> None:
        status.update(f"\\[{index + 1}/{total}] {escape(step.title)} ...")

    def log(message: str) -> None:
        status.update(f"[dim]{escape(message)}[/]")

    def done(index: int, report: StepReport) -> None:
        console.print(report_line(index, total, report), highlight=False)

    ctx.log = log
    with status:
        return run_plan(ctx, steps, dry_run=dry_run, on_start=start, on_done=done)
