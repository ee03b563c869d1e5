"""Build the BOINC server from a source the admin chooses; an already built tree is reused.

``--boinc-source`` is a git URL with a ref (``URL@REF`` after ``.git``, or ``URL#REF``), a tarball
(a file on this machine, uploaded, or an http(s) URL the host downloads), or an absolute directory
on the host, which is built in place. Git and tarball sources go to /opt/pymw-admin/boinc/<ref>.

Root fetches and builds a git source (the tree is root's, under /opt). A ref of 40 hex digits is
a pinned commit, fetched and checked; any other ref (a tag or a branch, which can move) is
resolved once cloned, and the commit checked out is recorded in the tree (COMMIT_FILE) and said
in the step's report on this run and every later one, so two runs (or two hosts) can be
compared and the source pinned to it. Git is given every URL and path after ``--``, and a
source that starts with ``-`` is refused, so none is read as an option.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path

from pymw_admin.admin.plan import Action, Context, Step
from pymw_admin.admin.remote import Host
from pymw_admin.admin.server.spec import ProjectSpec
from pymw_admin.errors import UsageError

BUILD_ROOT = "/opt/pymw-admin/boinc"
TARBALL_SUFFIXES = (".tar.gz", ".tgz", ".tar.xz", ".tar.bz2", ".tar")
# what make_project and the daemons need from a built tree
BUILT = ("sched/cgi", "sched/feeder", "sched/transitioner", "sched/file_deleter",
         "tools/create_work", "tools/boinc_path_config.py", "html/project.sample/project.inc",
         "db/schema.sql")
# a server-only build: no client or manager; boinc zip is needed by the server since 1.6
CONFIGURE = ("--disable-client --disable-manager --enable-server --disable-fcgi "
             "--enable-boinczip --enable-libraries")
LOG = "pymw-admin-build.log"
LOCK = ".pymw-admin-build.lock"  # in the tree: one build at a time there
COMMIT_FILE = ".pymw-admin-commit"  # in a git source's tree: the commit it was fetched at


@dataclass(frozen=True)
class Source:
    kind: str  # "git" | "tarball" | "dir"
    location: str
    ref: str = ""


COMMIT_RE = re.compile(r"^[0-9a-f]{40}$")


def parse_source(text: str) -> Source:
    text = text.strip()
    if not text:
        raise UsageError("empty --boinc-source")
    if text.startswith("-"):
        raise UsageError(f"--boinc-source {text!r} starts with '-': not a source (git would "
                         "read it as an option)")
    if text.startswith("http://"):
        # root builds and installs what it fetches: a plain-http download can be swapped on the way
        raise UsageError(f"--boinc-source {text!r} is plain http: use https://, or a git URL "
                         "pinned to a commit (URL.git@<40-hex commit>), which git verifies")
    if text.endswith(TARBALL_SUFFIXES):
        return Source("tarball", text)
    if "#" in text:
        url, ref = text.split("#", 1)
        return _git_source(url, ref)
    if ".git@" in text:
        url, ref = text.split(".git@", 1)
        return _git_source(url + ".git", ref)
    if text.startswith("/"):
        return Source("dir", text.rstrip("/") or "/")
    if re.match(r"^(https?|git|ssh)://", text) or text.endswith(".git"):
        return Source("git", text, "")
    raise UsageError(
        f"cannot tell what --boinc-source {text!r} is: give a git URL (URL.git@REF), a tarball "
        "(.tar.gz) or an absolute directory on the host"
    )


def _git_source(url: str, ref: str) -> Source:
    if ref.startswith("-") or any(c.isspace() for c in ref):
        raise UsageError(f"--boinc-source: the git ref {ref!r} is not one (it starts with '-' "
                         "or holds a space)")
    return Source("git", url, ref)


def pinned(source: Source, commit: str) -> str:
    """The ``--boinc-source`` that names ``commit`` of a git source."""
    return f"{source.location}@{commit}" if source.location.endswith(".git") else (
        f"{source.location}#{commit}")


def git_fetch(source: Source, into: str) -> str:
    """The root command that fetches a git source into ``into`` and records the commit checked
    out in ``into/COMMIT_FILE``: a pinned commit is fetched by itself and checked; another ref
    is cloned and resolved. URLs and paths come after ``--``."""
    url, q = shlex.quote(source.location), shlex.quote(into)
    record = (f"git -C {q} rev-parse --verify -q 'HEAD^{{commit}}' > "
              f"{shlex.quote(f'{into}/{COMMIT_FILE}')}")
    if COMMIT_RE.match(source.ref):
        ref = source.ref
        return (f"git init -q -- {q} && git -C {q} fetch -q --depth 1 -- {url} {ref} && "
                f"git -C {q} checkout -q FETCH_HEAD -- && "
                f'test "$(git -C {q} rev-parse HEAD)" = {ref} && {record}')
    branch = f"--branch {shlex.quote(source.ref)} " if source.ref else ""
    return f"git clone -q --depth 1 {branch}-- {url} {q} && {record}"


def tree_dir(source: Source) -> str:
    if source.kind == "dir":
        return source.location
    label = source.ref or Path(source.location).name
    for suffix in (*TARBALL_SUFFIXES, ".git"):
        label = label.removesuffix(suffix)
    return f"{BUILD_ROOT}/{re.sub(r'[^A-Za-z0-9._-]+', '_', label) or 'default'}"


@dataclass(frozen=True)
class BuildFacts:
    exists: bool
    has_configure: bool = False
    configured: bool = False
    missing: tuple[str, ...] = BUILT
    commit: str = ""  # the commit a git source's tree was fetched at ("" = not recorded)


def gather(ctx: Context) -> BuildFacts:
    source = parse_source(ctx.wanted.boinc_source)
    tree = tree_dir(source)
    q = shlex.quote(tree)
    checks = " ".join(shlex.quote(p) for p in BUILT)
    out = ctx.host.run(
        f"cd {q} 2>/dev/null || exit 0; echo exists; test -x configure && echo configure; "
        f"test -f config.status && echo configured; for f in {checks}; do "
        f"test -e \"$f\" || echo \"missing $f\"; done; "
        f"test -f {COMMIT_FILE} && echo \"commit $(head -c 100 {COMMIT_FILE})\"", check=False
    ).stdout.splitlines()
    if "exists" not in out:
        return BuildFacts(False)  # nothing there: everything is missing, nothing is done
    commits = [line[7:] for line in out if line.startswith("commit ")]
    commit = commits[0] if commits and COMMIT_RE.match(commits[0]) else ""
    if source.kind == "git" and commit:
        # said on every run, so runs (and hosts) can be compared; unpinned: how to pin it
        ctx.say(f"BOINC source at commit {commit}" + (
            "" if commit == source.ref else f" (pin it: --boinc-source {pinned(source, commit)})"))
    return BuildFacts(True, "configure" in out, "configured" in out,
                      tuple(line[8:] for line in out if line.startswith("missing ")), commit)


def decide(facts: BuildFacts, spec: ProjectSpec) -> list[Action]:
    source = parse_source(spec.boinc_source)
    tree = tree_dir(source)
    if not facts.missing:
        return []  # a built tree: reuse it as it is
    actions = []
    if not facts.exists:
        if source.kind == "dir":
            raise UsageError(f"no BOINC source directory {tree} on the host")
        actions.append(Action("fetch", f"{source.location} {source.ref}".strip() + f" -> {tree}"))
    if not facts.has_configure:
        actions.append(Action("autosetup", tree))
    if not facts.configured:
        actions.append(Action("configure", tree))
    actions.append(Action("build", tree))
    return actions


def _fetch_tarball(host: Host, archive: str, into: str) -> None:
    """Unpack a tarball (this machine's file, or a URL the host downloads) into ``into``.

    The archive goes to a fresh ``mktemp -d`` directory on the host, never a fixed /tmp name
    another local user could have made first, and is removed afterwards.
    """
    if archive.startswith(("http://", "https://")):
        host.sudo(f'd=$(mktemp -d) && {{ curl -fsSL -o "$d/boinc.tar" {shlex.quote(archive)} '
                  f'&& mkdir -p {into} && tar -xf "$d/boinc.tar" -C {into} '
                  '--strip-components=1; rc=$?; rm -rf "$d"; exit $rc; }', timeout=1800,
                  what="downloading and unpacking the BOINC tarball")
        return
    if not Path(archive).is_file():
        raise UsageError(f"no such tarball: {archive}")
    # the login user uploads; root only reads it (the directory is the login user's, mode 700)
    tmpdir = host.run("mktemp -d", what="making a temporary directory").stdout.strip()
    try:
        remote = f"{tmpdir}/{Path(archive).name}"
        host.put(archive, remote)
        host.sudo(f"mkdir -p {into} && tar -xf {shlex.quote(remote)} -C {into} "
                  "--strip-components=1", timeout=600, what="unpacking the BOINC tarball")
    finally:
        host.run(f"rm -rf {shlex.quote(tmpdir)}", check=False)


def apply(ctx: Context, actions: list[Action]) -> None:
    host = ctx.host
    source = parse_source(ctx.wanted.boinc_source)
    tree = tree_dir(source)
    q = shlex.quote(tree)
    log = f"{q}/{LOG}"
    for action in actions:
        if action.kind == "fetch":
            host.sudo(f"install -d -m 755 {shlex.quote(BUILD_ROOT)}")
            tmp = shlex.quote(tree + ".partial")
            host.sudo(f"rm -rf {tmp}")
            if source.kind == "git":
                what = (f"git fetch of BOINC commit {source.ref}" if COMMIT_RE.match(source.ref)
                        else "git clone of the BOINC source")
                host.sudo(git_fetch(source, tree + ".partial"), timeout=1800, what=what)
            else:
                _fetch_tarball(host, source.location, tmp)
            host.sudo(f"mv {tmp} {q}")
        elif action.kind == "autosetup":
            ctx.log("running _autosetup")
            host.sudo(_locked(q, f"./_autosetup > {log} 2>&1"), timeout=1800,
                      what=f"_autosetup (see {tree}/{LOG})")
        elif action.kind == "configure":
            ctx.log("running configure")
            host.sudo(_locked(q, f"./configure {CONFIGURE} >> {log} 2>&1"), timeout=1800,
                      what=f"configure (see {tree}/{LOG})")
        elif action.kind == "build":
            # lib/ races under parallel make (".lo is not a valid libtool object"): build it alone
            ctx.log("building lib/ (serially), then the server")
            host.sudo(_locked(q, f"make -C lib >> {log} 2>&1 && make -j\"$(nproc)\" >> {log} 2>&1"),
                      timeout=3600, what=f"make (see {tree}/{LOG})")


def _locked(tree: str, command: str) -> str:
    """``command`` in the tree, while no other run builds there: two makes in one tree (a run
    whose connection dropped goes on building on the server) break each other's objects."""
    return f"cd {tree} && flock {LOCK} sh -c {shlex.quote(command)}"


STEP = Step("boinc_build", "build the BOINC server", gather, decide, apply,
            hint="see the build log named above, fix it and run the same command again; "
                 "the tree already built is kept")
