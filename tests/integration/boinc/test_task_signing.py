"""M5 on the real project and client: deploy-app made the project's task key (owner's, 0600, off
the web tree) and ships its public half in the app version; a signed task completes on the real
client, and a task altered after signing (a payload that would create a file if unpickled, the
master's signature kept) comes back as that task's TaskSignatureError, the file never made: both
for a task in the work unit's command line and for one in a task file."""

from __future__ import annotations

import os
import re
import stat

import pytest

from pymw_admin.wire import signature
from testbed.boinc_project import PROJECT_DIR
from tests.helpers.boinc_master import Project, start_master, tag, write_script
from tests.integration.boinc.conftest import kicker  # noqa: F401

pytestmark = [pytest.mark.boinc, pytest.mark.ssh, pytest.mark.bundle]

PLANTED = f"/tmp/pymw-signing-planted-{os.getpid()}"

MASTER = '''
import json, pickle, sys
from pathlib import Path
from pymw_admin.runtime import Master, options
from pymw_admin.runtime.errors import TaskError, TaskSignatureError
from pymw_admin.wire import encoding, signature


def double(x):
    return 2 * x


class Plant:
    def __reduce__(self):
        return (open, (sys.argv[-1], "w"))


with Master(interface=options.interface_from_args()) as master:
    iface = master.interface
    honest = master.submit_task(double, (21,))
    tampered = master.submit_task(double, (1,))  # both queued: staged when their batch goes
    if sys.argv[-2] == "file":
        iface.inline_tasks = False  # as for a task too large for a command line
    sign_batch = iface._signer.sign_batch
    swapped = []

    def attacker(task_files):
        # what an attacker with write access to the download tree or the database (not to the
        # key) would do between signing and the client: swap the payload, keep the signature
        signed = sign_batch(task_files)
        for i, plain in enumerate(task_files):
            if encoding.read_task_header(plain)[0].task_id == tampered.task_id:
                header = {"task_id": tampered.task_id, "python": encoding.python_minor(),
                          "kind": "function"}
                hostile = signature.signed_form(encoding.TASK_MAGIC + json.dumps(header).encode()
                                                + b"\\n" + pickle.dumps(Plant(), protocol=5))
                signed[i] = hostile + signed[i][signed[i].rindex(signature.BATCH_SIGNATURE_MARK):]
                swapped.append(i)
        return signed

    iface._signer.sign_batch = attacker
    iface.flush()
    print("STAGED", len(swapped) == 1, flush=True)
    task_dir = Path(iface.layout.task_dir(iface.tag))
    print("FILES", len(list(task_dir.glob("*.task"))) if task_dir.is_dir() else 0, flush=True)
    for _ in range(2):
        try:
            task, value = master.get_result()
            print("RESULT", task.task_id == honest.task_id, value, flush=True)
        except TaskSignatureError as exc:
            print("REFUSED", exc.task.task_id == tampered.task_id, exc.remote_message,
                  flush=True)
        except TaskError as exc:
            print("ERROR", exc.remote_type, exc.remote_message, flush=True)
'''


def test_deploy_app_made_the_task_key_and_ships_it(project: Project) -> None:
    private = PROJECT_DIR / "keys" / "pymw_task_private.pem"
    info = private.lstat()
    assert stat.S_ISREG(info.st_mode) and stat.S_IMODE(info.st_mode) == 0o600
    assert private.owner() == PROJECT_DIR.owner()
    assert "html" not in private.relative_to(PROJECT_DIR).parts
    public = (PROJECT_DIR / "keys" / "pymw_task_public.pem").read_bytes()
    signature.load_public_pem(public)
    # every current app version lists it as pymw_task_key (signed by BOINC like the others)
    versions = sorted((PROJECT_DIR / "apps" / "pymw").glob("*/*/version.xml"),
                      key=lambda p: int(p.parent.parent.name))
    newest = versions[-1].read_text()
    match = re.search(r"<physical_name>([^<]+)</physical_name>\s*"
                      r"<logical_name>pymw_task_key</logical_name>", newest)
    assert match, newest[-1500:]
    shipped = versions[-1].parent / match.group(1)
    assert shipped.read_bytes() == public
    assert shipped.with_name(shipped.name + ".sig").exists() or (
        PROJECT_DIR / "keys" / "code_sign_private").exists()  # update_versions signs it


@pytest.mark.parametrize("way", ["inline", "file"])
def test_a_signed_task_completes_and_an_altered_one_is_refused(
        project: Project, master_python: str, kicker: None, way: str) -> None:  # noqa: F811
    script = write_script("boinc_signing.py", MASTER)
    run = start_master(master_python, script, "-a", f"tag={tag('signing')}", way,
                       PLANTED).finish(timeout=300)
    assert run.proc.returncode == 0, run.stderr[-3000:]
    assert "STAGED True" in run.stdout, run.stdout + run.stderr[-2000:]
    # small tasks travel in the work unit's command line, unless told otherwise
    assert f"FILES {2 if way == 'file' else 0}" in run.stdout, run.stdout
    assert "RESULT True 42" in run.stdout, run.stdout + run.stderr[-2000:]
    refused = [ln for ln in run.stdout.splitlines() if ln.startswith("REFUSED")]
    assert refused and refused[0].startswith("REFUSED True task file refused: the task file "
                                             "was altered"), run.stdout
    assert not os.path.exists(PLANTED)
