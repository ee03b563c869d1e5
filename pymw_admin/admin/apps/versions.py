"""App versions: one per bundle (one per BOINC platform), immutable, installed by update_versions.

The version directory ``PROJECT/apps/APP/N/PLATFORM/`` holds the bundle's files under their
content-hashed physical names, ``version.xml`` (pymw_admin.bundles.version_xml) and a
``.pymw-digest`` with the manifest's digest and ``.pymw-features`` with what its worker understands
(update_versions skips dot files; masters read the latter). A bundle whose digest
is already installed for its platform changes nothing; a changed bundle becomes version N+1, the
highest number the app has plus one: BOINC never changes a version's files.

Every version also ships the project's task key (the public half, made by the ``task_key`` step)
as the file with open name ``pymw_task_key``: the bundle verifies task files with it. The key is
part of the version's marker, so a new key makes new versions.

Signing: with a key of the admin's (``AppSpec.sign_key``, BOINC's key format) every file gets a
``.sig`` made here (``apps.signing``), after checking that the key matches the project's
``keys/code_sign_public``; otherwise update_versions signs with the server's
``keys/code_sign_private``. update_versions runs with ``--noconfirm`` and its output is read, since
its errors exit 0.
"""

from __future__ import annotations

import hashlib
import os
import shlex
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

from pymw_admin.admin.apps import signing
from pymw_admin.admin.apps.common import as_owner, project_path, quote_sql, sql_rows
from pymw_admin.admin.apps.spec import AppSpec
from pymw_admin.admin.plan import Action, Context
from pymw_admin.admin.project import Project
from pymw_admin.bundles import version_xml
from pymw_admin.bundles.manifest import Bundle
from pymw_admin.errors import ConfigError, RemoteError
from pymw_admin.wire import signature
from pymw_admin.wire.boinc_contract import FEATURES_FILE, TASK_KEY_NAME, TASK_KEY_PUBLIC

DIGEST_FILE = ".pymw-digest"
# how a bundle becomes a version directory; a new layout is a new version of the same bundle
LAYOUT = "launcher2-api7"


def marker(digest: str, task_key: str | None = None) -> str:
    """What ``.pymw-digest`` holds for a bundle: its manifest digest, the layout and the task
    key it ships."""
    key = hashlib.sha256(task_key.encode()).hexdigest()[:16] if task_key else "none"
    return f"{digest}/{LAYOUT}/key-{key}"


def task_key_file(task_key: str) -> version_xml.ExtraFile:
    return version_xml.ExtraFile(TASK_KEY_NAME, task_key.encode())


def read_task_key(ctx: Context) -> str | None:
    """The project's public task key (None before the task_key step made it), checked."""
    path = project_path(ctx.spec, "/".join(TASK_KEY_PUBLIC))
    text = ctx.host.read_text(path, user=ctx.spec.owner)
    if text is not None:
        try:
            signature.load_public_pem(text)
        except signature.SignatureError as exc:
            raise ConfigError(f"{path} is not a usable task key ({exc})") from None
    return text
ADDED = "App version added successfully"


@dataclass(frozen=True)
class VersionFacts:
    dirs: dict[tuple[int, str], str]  # (version, platform) -> digest ("" when unknown)
    db: frozenset[tuple[int, str]]  # app versions in the database
    key_matches: bool | None = None  # the admin's key vs code_sign_public (None: no key given)
    task_key: str | None = None  # the project's public task key (PEM)


def gather(ctx: Context, app: AppSpec) -> VersionFacts:
    host, spec = ctx.host, ctx.spec
    base = shlex.quote(project_path(spec, f"apps/{app.name}"))
    # as the owner: the apps tree is the owner's (root would follow links planted there)
    out = host.run(
        f"cd {base} 2>/dev/null || exit 0; for d in */*/; do test -d \"$d\" || continue; "
        f"echo \"$d $(timeout 10 cat \"$d{DIGEST_FILE}\" 2>/dev/null)\"; done", user=spec.owner,
        check=False).stdout
    dirs: dict[tuple[int, str], str] = {}
    for line in out.splitlines():
        path, _, digest = line.partition(" ")
        version, _, platform = path.rstrip("/").partition("/")
        if version.isdigit() and platform:
            dirs[(int(version), platform)] = digest.strip()
    rows = sql_rows(host, spec,
                    "SELECT av.version_num, p.name FROM app_version av JOIN app a ON "
                    "av.appid=a.id JOIN platform p ON av.platformid=p.id WHERE a.name="
                    f"{quote_sql(app.name)}")
    db = frozenset((int(v), p) for v, p in rows)
    key_matches = None
    if app.sign_key is not None:
        public = host.read_text(project_path(spec, "keys/code_sign_public"), user=spec.owner)
        if public is None:
            raise RemoteError(f"the project has no keys/code_sign_public in {spec.project_dir}")
        key_matches = signing.matches(signing.load_private(app.sign_key),
                                      signing.parse_public(public, "keys/code_sign_public"))
    return VersionFacts(dirs, db, key_matches, read_task_key(ctx))


def decide(facts: VersionFacts, spec: Project, app: AppSpec) -> list[Action]:
    if facts.key_matches is False:
        raise ConfigError(f"the signing key {app.sign_key} does not match the project's "
                          "keys/code_sign_public: clients would refuse the files")
    actions = []
    known = {v for v, _ in facts.dirs} | {v for v, _ in facts.db}
    next_version = max(known, default=0) + 1
    for platform, digest in sorted(app.digests().items()):
        same = [v for (v, p), d in facts.dirs.items()
                if p == platform and d == marker(digest, facts.task_key)]
        if same:
            version = max(same)
            if (version, platform) not in facts.db:
                actions.append(Action("update_versions", f"{app.name} {version} {platform}"))
        else:
            actions.append(Action("add-version",
                                  f"{app.name} {next_version} {platform} (bundle {digest})"))
    return actions


def stage(bundle: Bundle, dest: Path, key: signing.PrivateKey | None, task_key: str) -> None:
    """An app version directory as update_versions reads it, signed when a key is given."""
    # a client runs the main program from the project directory: Unix bundles get a launcher
    version_xml.stage(bundle.manifest, bundle.dir, dest, api_version=version_xml.API_VERSION,
                      launcher=version_xml.needs_launcher(bundle.manifest),
                      extra=[task_key_file(task_key)])
    (dest / DIGEST_FILE).write_text(marker(bundle.manifest.digest(), task_key) + "\n")
    # what the version's worker understands, for the masters (a dot file: not part of it)
    (dest / FEATURES_FILE).write_text("".join(f"{f}\n" for f in bundle.manifest.features))
    if key is not None:
        for path in sorted(dest.iterdir()):
            if path.name != version_xml.VERSION_XML and not path.name.startswith("."):
                path.with_name(path.name + ".sig").write_text(signing.sign_file(path, key))


def check_update_output(out: str, expected: int) -> None:
    """update_versions exits 0 even when it dies: its output says what happened."""
    added = out.count(ADDED)
    if added >= expected:
        return
    lines = [ln.strip() for ln in out.splitlines() if ln.strip()]
    telling = [ln for ln in lines if any(w in ln.lower() for w in (
        "error", "not found", "no such", "differ", "skipping", "not present", "can't"))]
    reason = (telling or lines or ["no output"])[-1]
    raise RemoteError(f"update_versions added {added} of {expected} app version(s): {reason}")


def apply(ctx: Context, actions: list[Action], app: AppSpec) -> None:
    host, spec = ctx.host, ctx.spec
    bundles = {b.manifest.platform: b for b in app.bundles}
    new = [a.detail.split()[:3] for a in actions if a.kind == "add-version"]
    if new:
        task_key = read_task_key(ctx)
        if task_key is None:
            raise RemoteError("the project has no task key (keys/pymw_task_public.pem): the "
                              "task_key step makes it")
        key = signing.load_private(app.sign_key) if app.sign_key else None
        with tempfile.TemporaryDirectory(prefix="pymw-deploy-") as tmp:
            root = Path(tmp) / "versions"
            for _name, version, platform in new:
                ctx.log(f"staging {platform} version {version}")
                stage(bundles[platform], root / version / platform, key, task_key)
            archive = Path(tmp) / "versions.tar"
            with tarfile.open(archive, "w") as tar:
                tar.add(root, arcname=".")
            remote = f"/tmp/pymw-deploy-{os.getpid()}-{os.urandom(4).hex()}.tar"
            ctx.log("uploading the app version files")
            host.put(archive, remote)
            try:
                host.run(f"chmod 644 {shlex.quote(remote)}")
                target = shlex.quote(project_path(spec, f"apps/{app.name}"))
                # files are extracted aside and renamed in, so a half copy is never a version
                as_owner(host, spec,
                         f"mkdir -p {target} && t=$(mktemp -d {target}/.incoming.XXXXXX) && "
                         f"tar -xf {shlex.quote(remote)} -C \"$t\" && for v in \"$t\"/*; do "
                         f"for p in \"$v\"/*; do mkdir -p {target}/$(basename \"$v\") && "
                         f"mv \"$p\" {target}/$(basename \"$v\")/; done; done; rm -rf \"$t\"",
                         what="unpacking the app versions")
            finally:
                host.run(f"rm -f {shlex.quote(remote)}", check=False)
    expected = sum(1 for a in actions if a.kind in ("add-version", "update_versions"))
    if expected:
        ctx.log("bin/update_versions")
        out = as_owner(host, spec, "bin/update_versions --noconfirm", stdin="y\n" * 64,
                       what="bin/update_versions", timeout=1800)
        check_update_output(out, expected)
