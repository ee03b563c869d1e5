"""Pre-flight: a supported OS, root through sudo, and no foreign project under our name.

Nothing changes on the host until this step has passed; its one action records the project as
ours (a root-only directory under /etc/pymw-admin), which later runs recognise.
"""

from __future__ import annotations

import ast
import shlex
from dataclasses import dataclass, field

from pymw_admin.admin.plan import Action, Context, Step
from pymw_admin.admin.server.boinc_build import parse_source
from pymw_admin.admin.server.spec import ProjectSpec
from pymw_admin.errors import UsageError

# the oldest releases whose packages the server build was seen to work with
MIN_VERSION = {"debian": (12,), "ubuntu": (22, 4)}


@dataclass(frozen=True)
class OSFacts:
    os_release: dict[str, str]
    hostname: str = "host"
    marker: bool = False  # /etc/pymw-admin/NAME/project exists
    marker_project_dir: str = ""  # the project_dir recorded in that marker
    project_dir: bool = False
    database_dir: bool = False  # /var/lib/mysql/NAME exists
    has_apt: bool = True
    source_dir: bool = True  # a --boinc-source directory on the host exists
    notes: dict[str, str] = field(default_factory=dict)
    marker_owner: str = ""  # the owner recorded in the marker


def parse_os_release(text: str) -> dict[str, str]:
    values: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and key.strip() and not key.startswith("#"):
            values[key.strip()] = value.strip().strip('"').strip("'")
    return values


def _version(text: str) -> tuple[int, ...]:
    parts = []
    for piece in text.split("."):
        if not piece.isdigit():
            break
        parts.append(int(piece))
    return tuple(parts)


def os_family(os_release: dict[str, str]) -> str | None:
    """'debian' or 'ubuntu' (its derivatives included), else None."""
    ids = [os_release.get("ID", "").lower(), *os_release.get("ID_LIKE", "").lower().split()]
    for family in ("ubuntu", "debian"):
        if family in ids:
            return family
    return None


def check_supported(os_release: dict[str, str]) -> None:
    pretty = os_release.get("PRETTY_NAME") or os_release.get("ID") or "an unknown OS"
    family = os_family(os_release)
    if family is None:
        raise UsageError(f"unsupported OS: {pretty}; init-project needs Debian >= 12 or "
                         "Ubuntu >= 22.04 (or a derivative)")
    own = os_release.get("ID", "").lower()
    if own in MIN_VERSION:
        version = _version(os_release.get("VERSION_ID", ""))
        if version and version < MIN_VERSION[own]:
            need = ".".join(f"{v:02d}" if i else str(v) for i, v in enumerate(MIN_VERSION[own]))
            raise UsageError(f"unsupported OS: {pretty}; {own} {need} or newer is needed")


def parse_marker(text: str) -> dict[str, str]:
    """The marker's ``key = 'value'`` lines (written by :func:`apply`)."""
    values: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if not sep:
            continue
        try:
            parsed = ast.literal_eval(value.strip())
        except (ValueError, SyntaxError):
            continue
        if isinstance(parsed, str):
            values[key.strip()] = parsed
    return values


def gather(ctx: Context) -> OSFacts:
    host, spec = ctx.host, ctx.wanted
    host.check_sudo()
    script = (
        "cat /etc/os-release 2>/dev/null; echo '@@'; hostname; echo '@@'; "
        f"test -e {shlex.quote(spec.marker_file)} && echo marker; echo '@@'; "
        f"cat {shlex.quote(spec.marker_file)} 2>/dev/null; echo '@@'; "
        f"test -e {shlex.quote(spec.project_dir)} && echo project_dir; "
        f"test -d /var/lib/mysql/{spec.db_name} && echo database_dir; "
        "command -v apt-get >/dev/null && echo apt"
    )
    source = parse_source(spec.boinc_source)
    if source.kind == "dir":
        script += f"; test -d {shlex.quote(source.location)} || echo no_source"
    out = host.sudo(script, what="reading the OS").stdout
    release, hostname, marker_flag, marker, flags = ([*out.split("@@\n"), "", "", "", ""])[:5]
    found = set(flags.split()) | set(marker_flag.split())
    recorded = parse_marker(marker)
    facts = OSFacts(parse_os_release(release), hostname.strip() or "host", "marker" in found,
                    recorded.get("project_dir", ""), "project_dir" in found,
                    "database_dir" in found, "apt" in found, "no_source" not in found,
                    marker_owner=recorded.get("owner", ""))
    ctx.notes["hostname"] = facts.hostname
    return facts


def decide(facts: OSFacts, spec: ProjectSpec) -> list[Action]:
    check_supported(facts.os_release)
    if not facts.has_apt:
        raise UsageError("unsupported OS: no apt-get on the host")
    if not facts.source_dir:
        raise UsageError(f"no BOINC source directory {spec.boinc_source} on the host; give "
                         "--boinc-source a directory there, a git URL or a tarball")
    if not facts.marker:
        if facts.project_dir:
            raise UsageError(
                f"a project directory {spec.project_dir} exists but was not made by pymw-admin; "
                "choose another project name or remove it"
            )
        if facts.database_dir:
            raise UsageError(
                f"a database named {spec.db_name} exists but was not made by pymw-admin; "
                "choose another project name or drop it"
            )
        return [Action("claim", f"record {spec.name} as managed by pymw-admin")]
    if facts.marker_project_dir and facts.marker_project_dir != spec.project_dir:
        # the marker vouches for one directory only; another one may be someone else's
        # the directory goes with its owner: naming one without the other plans the wrong owner
        owner = facts.marker_owner or spec.owner
        raise UsageError(
            f"project {spec.name} was made in {facts.marker_project_dir} (owner {owner}), not in "
            f"{spec.project_dir}; pass --owner {owner} --project-dir "
            f"{facts.marker_project_dir} (or the project file init-project wrote), or choose "
            "another project name"
        )
    return []


def apply(ctx: Context, actions: list[Action]) -> None:
    spec = ctx.wanted
    ctx.host.sudo(f"install -d -m 700 -o root -g root {shlex.quote(spec.secrets_dir)}")
    ctx.host.write_file(spec.marker_file, f"name = {spec.name!r}\nowner = {spec.owner!r}\n"
                        f"project_dir = {spec.project_dir!r}\n", mode=0o600)


STEP = Step("preflight", "check the OS, sudo and the project name", gather, decide, apply,
            hint="fix the cause and run the same command again")
