"""A run on the server: its directory and files, the listing that reads them, and starting,
following and stopping it (see the package's docstring for the files).
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import PurePosixPath
from typing import NoReturn

from pymw_admin.admin.remote import READ_SECONDS, Host
from pymw_admin.admin.runs.upload import RunPlan
from pymw_admin.admin.target import ProjectTarget
from pymw_admin.errors import RemoteError, UsageError

RUN_FILES = ("pid", "master_pid", "started", "ended", "exit", "stopped", "log", "run.sh",
             "meta.json", "script_name")
STOP_GRACE = 10.0
# a detached run is watched this long for an end at its start (a master refusing its tag's
# leftovers, a missing module): seconds, and the lines of its log then shown
EARLY_END_SECONDS = 5.0
EARLY_END_LINES = 10
CLOSING_LINES = 50  # the end of a stopped run's log, where its master says what became of work
# the master's closing lines that say what it cancelled and kept (interfaces.boinc's _cancel,
# runtime.master's close and _report_reuse)
_CLOSING = re.compile(r"pymw: (cancelled \d|cancelling \d|\d+ task\(s\) an earlier master left "
                      r"were not submitted again|\d+ result\(s\) from an earlier master)")
FIELD_SEP = "\x1f"  # the listing's field separator: never in a run's file names or numbers


# -- what a run is --------------------------------------------------------------------------------
@dataclass(frozen=True)
class RunInfo:
    id: str
    script: str
    pid: int | None  # the master's own process
    alive: bool  # some process of the run's process group is alive
    exit_code: int | None
    started: float | None
    ended: float | None
    stopped: bool
    pgid: int | None = None  # the run's process group (the wrapper's pid): what stop signals
    tag: str | None = None  # the BOINC tag of its master; None: another interface, or unknown
    # results from an earlier master and computed anew (its `reuse` file), once the master ended
    reused: int | None = None
    computed: int | None = None

    @property
    def state(self) -> str:
        """running, exited(N), killed (stopped by us), or lost (gone without an exit status)."""
        if self.exit_code is None:
            if self.alive:
                return "running"
            return "killed" if self.stopped else "lost"
        if self.stopped:
            return "killed"
        return f"exited({self.exit_code})"

    @property
    def running(self) -> bool:
        return self.state == "running"

    def as_dict(self) -> dict[str, object]:
        data = asdict(self)
        data["id"] = int(self.id)  # a number to JSON readers; the string is the directory's name
        data["state"] = self.state
        return data


# how interfaces.boinc makes a tag of -a tag=NAME or of the script's name (its _TAG_CHARS)
_TAG_CHARS = re.compile(r"[^A-Za-z0-9]+")


class _SwitchParser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise ValueError(message)


def boinc_tag(script: str, args: Sequence[str]) -> str | None:
    """The BOINC tag a run's master uses: ``-a tag=NAME`` among its switches, else the script's
    name made a tag; None when its switches pick another interface than run.sh's boinc.

    Read as runtime.options reads the master's switches (argparse, our switches before ``--``),
    the interface and the default as interfaces.boinc makes them.
    """
    switches = list(args)
    if "--" in switches:
        switches = switches[:switches.index("--")]
    parser = _SwitchParser(add_help=False, allow_abbrev=False)
    for short, long in (("-n", "--num-workers"), ("-p", "--project-home"), ("-c", "--app-path")):
        parser.add_argument(short, long)  # each takes the next argument, as the master's do
    parser.add_argument("-i", "--interface", default="boinc")
    parser.add_argument("-a", "--app-args", default="")
    try:
        known, _ = parser.parse_known_args(switches)
    except ValueError:  # the master refuses these switches too: it never gets to a tag
        return None
    if known.interface.lower() != "boinc":
        return None
    given = [item.partition("=")[2] for item in known.app_args.split()
             if item.partition("=")[0] == "tag"]
    if not given:
        return _TAG_CHARS.sub("_", PurePosixPath(script).stem).strip("_") or "master"
    # "tag" without a value: the master refuses it
    return _TAG_CHARS.sub("_", given[-1]).strip("_") if given[-1] else None


def _tag_of(meta_text: str, script: str) -> str | None:
    """The tag from the run's meta.json (its arguments); None when that cannot be read."""
    try:
        meta = json.loads(meta_text)
    except ValueError:
        return None
    args = meta.get("args") if isinstance(meta, dict) else None
    if not isinstance(args, list) or not all(isinstance(a, str) for a in args):
        return None
    name = meta.get("script")
    return boinc_tag(name if isinstance(name, str) and name else script, args)


def runs_dir(target: ProjectTarget) -> str:
    return f"{target.project_dir}/pymw/runs"


def venv_dir(target: ProjectTarget) -> str:
    return f"{target.home}/.pymw-admin/venv"


def check_run_id(run_id: str) -> str:
    if not run_id.isdigit() or run_id.startswith("0"):
        raise UsageError(f"invalid run id {run_id!r}: run ids are whole numbers (see `runs`)")
    return run_id


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def parse_listing(text: str) -> list[RunInfo]:
    """Parse what :func:`listing_command` prints: one line a run, FIELD_SEP between fields."""
    runs = []
    for line in text.splitlines():
        # meta.json last, whole: whatever its text holds, it cannot shift the other fields
        parts = line.split(FIELD_SEP, 10)
        if len(parts) != 11 or not parts[0].isdigit():
            continue
        (run_id, pgid, master, alive, exit_code, started, ended, stopped, script, reuse,
         meta) = parts
        counts = reuse.split()
        reused, computed = ((int(counts[0]), int(counts[1]))
                            if len(counts) == 2 and all(c.isdigit() for c in counts)
                            else (None, None))
        code = _number(exit_code.strip())
        group = int(pgid) if pgid.strip().isdigit() else None
        runs.append(RunInfo(
            id=run_id, script=script.strip(),
            pid=int(master) if master.strip().isdigit() else group,
            alive=alive == "1", exit_code=None if code is None else int(code),
            started=_number(started.strip()), ended=_number(ended.strip()), stopped=stopped == "1",
            pgid=group, tag=_tag_of(meta, script.strip()), reused=reused, computed=computed,
        ))
    return sorted(runs, key=lambda r: int(r.id))


def listing_command(target: ProjectTarget, run_id: str | None = None) -> str:
    """A shell loop printing every run's (or one run's) files as one line."""
    sep = FIELD_SEP
    pattern = shlex.quote(run_id) if run_id else "*"
    # r: a regular file's text, briefly (a FIFO planted there must not hang the listing)
    return (
        f"cd {shlex.quote(runs_dir(target))} 2>/dev/null || exit 0; "
        'r() { [ -f "$1" ] && timeout 5 cat -- "$1" 2>/dev/null; }; '
        f"for d in {pattern}; do [ -f \"$d/run.sh\" ] || continue; "
        'pid=$(r "$d/pid"); alive=0; '
        # the group, not the wrapper: a master whose wrapper was killed still runs
        '[ -n "$pid" ] && kill -0 -"$pid" 2>/dev/null && alive=1; '
        f"printf '%s{sep}%s{sep}%s{sep}%s{sep}%s{sep}%s{sep}%s{sep}%s{sep}%s{sep}%s{sep}%s\\n' "
        '"$d" "$pid" "$(r "$d/master_pid")" '
        '"$alive" "$(r "$d/exit")" "$(r "$d/started")" '
        '"$(r "$d/ended")" "$(test -e "$d/stopped" && echo 1)" '
        # meta.json on one line: JSON's own newlines are only between its tokens
        '"$(r "$d/script_name")" "$(r "$d/reuse" | head -n 1)" '
        '"$(r "$d/meta.json" | tr \'\\n\' \' \')"; done'
    )


def list_runs(host: Host, target: ProjectTarget) -> list[RunInfo]:
    # as the owner: the runs are the owner's files, and root would follow links planted there
    return parse_listing(host.run(listing_command(target), user=target.owner,
                                  what="listing the runs").stdout)


def get_run(host: Host, target: ProjectTarget, run_id: str) -> RunInfo:
    check_run_id(run_id)
    found = parse_listing(host.run(listing_command(target, run_id), user=target.owner,
                                   what=f"reading run {run_id}").stdout)
    if not found:
        raise UsageError(f"no run {run_id} in project {target.name} on {host.name} "
                         "(see `pymw-admin runs`)")
    return found[0]


# -- starting, following, stopping ----------------------------------------------------------------
def check_project(host: Host, target: ProjectTarget) -> None:
    if not host.exists(f"{target.project_dir}/config.xml"):
        raise UsageError(f"no project at {target.project_dir} on {host.name} (no config.xml): "
                         "check the project file, or run `pymw-admin init-project`")


def start(host: Host, target: ProjectTarget, plan: RunPlan, python: str) -> str:
    """Upload the run's files into a new run directory and start it detached; return its id."""
    runs = shlex.quote(runs_dir(target))
    script = (
        f"set -e; umask 027; mkdir -p {runs}; cd {runs}; "
        "n=$(ls | grep -E '^[0-9]+$' | sort -n | tail -n 1); n=$((${n:-0} + 1)); "
        'while ! mkdir "$n" 2>/dev/null; do n=$((n + 1)); done; '
        'tar -xzf - -C "$n"; cd "$n"; '
        "setsid nohup sh ./run.sh > /dev/null 2>&1 < /dev/null & "
        "i=0; while [ ! -s master_pid ] && [ $i -lt 100 ]; do sleep 0.05; i=$((i + 1)); done; "
        'echo "@run $n"'
    )
    out = host.run(script, user=target.owner, stdin=plan.tarball(python, target.project_dir),
                   what="starting the run", timeout=120).stdout
    for line in out.splitlines():
        if line.startswith("@run "):
            return line.split()[1]
    raise RemoteError(f"{host.name}: the run did not report its id: {out.strip()[-200:]}")


@dataclass(frozen=True)
class EarlyEnd:
    """How a run ended within its first seconds."""

    exit_code: int
    log_tail: str  # the last lines of its log: the error, when it refused to start


def early_end_command(target: ProjectTarget, run_id: str, seconds: float = EARLY_END_SECONDS,
                      lines: int = EARLY_END_LINES) -> str:
    """One round trip, check, wait, read: wait up to ``seconds`` for the run's ``exit`` file;
    once there, print ``@exit CODE`` and the log's last ``lines``; nothing while it runs."""
    d = shlex.quote(f"{runs_dir(target)}/{check_run_id(run_id)}")
    steps = max(1, int(seconds * 10))
    return (
        f"cd {d} || exit 0; i=0; "
        f"while [ ! -f exit ] && [ $i -lt {steps} ]; do sleep 0.1; i=$((i + 1)); done; "
        # the wrapper writes exit (by a rename) once the script is gone: its log is whole
        '[ -f exit ] || exit 0; printf "@exit %s\\n" "$(timeout 5 cat exit)"; '
        f"[ -f log ] && timeout {READ_SECONDS} tail -n {int(lines)} -- log; true"
    )


def parse_early_end(out: str) -> EarlyEnd | None:
    """What :func:`early_end_command` printed: None while the run goes on."""
    head, _, rest = out.partition("\n")
    said = head.split()
    if len(said) != 2 or said[0] != "@exit" or not said[1].isdigit():
        return None
    return EarlyEnd(int(said[1]), rest)


def early_end(host: Host, target: ProjectTarget, run_id: str,
              seconds: float = EARLY_END_SECONDS) -> EarlyEnd | None:
    """How a run just started ended, when it ended within ``seconds``; None while it runs."""
    return parse_early_end(host.run(early_end_command(target, run_id, seconds),
                                    user=target.owner, what=f"watching run {run_id} start",
                                    timeout=seconds + 30).stdout)


def follow(host: Host, target: ProjectTarget, run_id: str,
           write: Callable[[bytes], object]) -> RunInfo:
    """Stream the run's log from the start until the run ends; return how it ended.

    Ctrl-C (KeyboardInterrupt) or a lost connection ends only the following, never the run.
    """
    info = get_run(host, target, run_id)
    log = shlex.quote(f"{runs_dir(target)}/{run_id}/log")
    if info.running and info.pid:
        command = f"touch {log}; exec tail -n +1 -f --pid={info.pid} {log}"
    else:
        command = f"[ -f {log} ] && timeout {READ_SECONDS} cat -- {log} 2>/dev/null; true"
    host.stream(command, write, user=target.owner)
    final = get_run(host, target, run_id)
    # tail leaves when the wrapper is gone; its exit file may land a moment later
    for _ in range(20):
        if final.exit_code is not None or final.alive:
            break
        time.sleep(0.1)
        final = get_run(host, target, run_id)
    return final


def read_log(host: Host, target: ProjectTarget, run_id: str, tail: int | None = None) -> str:
    get_run(host, target, run_id)
    return _log_text(host, target, run_id, tail)


def closing_lines(host: Host, target: ProjectTarget, run_id: str,
                  lines: int = CLOSING_LINES) -> list[str]:
    """The lines in the end of a run's log in which its master said what it cancelled and what
    it kept (``pymw: cancelled 3 work unit(s), kept 2 BOINC had finished``, ...): what ``stop``
    shows. Not always the log's last: the script may print after its master closed."""
    text = _log_text(host, target, check_run_id(run_id), lines)
    return [line for line in text.splitlines() if _CLOSING.match(line)]


def _log_text(host: Host, target: ProjectTarget, run_id: str, tail: int | None) -> str:
    log = shlex.quote(f"{runs_dir(target)}/{run_id}/log")
    command = f"tail -n {int(tail)} -- {log}" if tail else f"cat -- {log}"
    return host.run(f"[ -f {log} ] && timeout {READ_SECONDS} {command} 2>/dev/null; true",
                    user=target.owner, what=f"reading run {run_id}'s log").stdout


def stop(host: Host, target: ProjectTarget, run_id: str, grace: float = STOP_GRACE) -> RunInfo:
    """TERM the run's process group, KILL it after ``grace`` seconds; record it as killed."""
    info = get_run(host, target, run_id)
    if not info.running or not info.pgid:
        return info
    d = shlex.quote(f"{runs_dir(target)}/{run_id}")
    steps = max(1, int(grace * 10))
    script = (
        # the whole group, wrapper or not: dash's kill takes no "--", a negative pid right
        # after the signal names the group
        f"cd {d}; touch stopped; pid=$(cat pid); kill -TERM -$pid 2>/dev/null; i=0; "
        f'while kill -0 -"$pid" 2>/dev/null && [ $i -lt {steps} ]; do sleep 0.1; '
        'i=$((i + 1)); done; if kill -0 -"$pid" 2>/dev/null; then kill -KILL -$pid; fi; '
        # a KILLed process answers kill -0 until its parent reaps it: give that time on a busy host
        'j=0; while kill -0 -"$pid" 2>/dev/null && [ $j -lt 50 ]; do sleep 0.1; j=$((j + 1)); '
        'done; if kill -0 -"$pid" 2>/dev/null; then echo "@alive $pid"; exit 1; fi; '
        # KILLed wrappers write no exit status: record one as the shell would (128 + 9)
        "if [ ! -e exit ]; then date +%s > ended; echo 137 > exit; fi"
    )
    host.run(script, user=target.owner, what=f"stopping run {run_id}", timeout=grace + 30)
    return get_run(host, target, run_id)


def drop_tag(host: Host, target: ProjectTarget, tag: str, python: str) -> tuple[int, int]:
    """Cancel the work units a BOINC tag's earlier masters left uncollected; return how many it
    cancelled and how many it kept because BOINC had finished them. Runs on the server as the
    owner, with the project's pymw-admin (refused while a master holds the tag)."""
    if not re.fullmatch(r"[A-Za-z0-9_]+", tag):
        raise UsageError(f"invalid tag {tag!r}: tags are letters, digits and _")
    out = host.run(f"{shlex.quote(python)} -m pymw_admin.interfaces.boinc drop "
                   f"{shlex.quote(target.project_dir)} {shlex.quote(tag)}", user=target.owner,
                   what=f"dropping tag {tag}", timeout=600).stdout
    for line in out.splitlines():
        said = line.split()
        if len(said) == 3 and said[0] == "@dropped" and said[1].isdigit() and said[2].isdigit():
            return int(said[1]), int(said[2])
    raise RemoteError(f"{host.name}: dropping tag {tag} did not say how many it cancelled")
