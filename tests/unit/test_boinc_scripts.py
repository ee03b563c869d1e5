"""pymw_assimilator and pymw_compare run as scripts (as BOINC's daemons run them), fake inputs."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from pymw_admin.admin.apps import scripts
from pymw_admin.admin.apps.spec import AppSpec
from pymw_admin.admin.project_scripts import SCRIPTS_DIR
from pymw_admin.wire.encoding import ResultRecord, encode_result

COMPARE_SOURCE = SCRIPTS_DIR / "pymw_compare.py"


def installed(tmp_path: Path, *names: str) -> Path:
    """deploy-app's bin/ files named ``names``, written as it installs them."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    for wanted in scripts.wanted_files(AppSpec("pymw")):
        if wanted.rel.removeprefix("bin/") in names:
            (bin_dir / wanted.rel.removeprefix("bin/")).write_text(wanted.content)
    return bin_dir


@pytest.fixture()
def assimilator(tmp_path: Path) -> Path:
    """The assimilator as deploy-app installs it, beside pymw_boinc_contract.py."""
    return (installed(tmp_path, "pymw_assimilator", "pymw_boinc_contract.py")
            / "pymw_assimilator")


@pytest.fixture()
def compare(tmp_path: Path) -> Path:
    """pymw_compare as deploy-app installs it: bin/ holds it and pymw_untrusted.py."""
    return installed(tmp_path, "pymw_compare", "pymw_untrusted.py") / "pymw_compare"


def project(tmp_path: Path) -> Path:
    root = tmp_path / "proj"
    (root / "tmp_vm").mkdir(parents=True)
    (root / "config.xml").write_text("<boinc><config><db_name>x</db_name></config></boinc>")
    return root


def run(script: Path, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    # -I: the server's python3 with nothing of ours on its path, as the daemons run it
    return subprocess.run([sys.executable, "-I", str(script), *args], capture_output=True,
                          text=True, cwd=cwd, check=False)


def test_assimilator_files_a_result_by_work_unit_name(tmp_path: Path, assimilator: Path) -> None:
    root = project(tmp_path)
    upload = tmp_path / "pymw_run_ab12_3_0_r998877_0"
    upload.write_bytes(b"record")
    done = run(assimilator, "17", str(upload), cwd=root / "tmp_vm")
    assert done.returncode == 0, done.stderr
    assert (root / "pymw" / "results" / "pymw_run_ab12_3.result").read_bytes() == b"record"
    assert upload.stat().st_size == 0  # moved: an empty file is left for the file deleter
    assert not list((root / "pymw" / "results").glob(".part-*"))


def test_assimilator_older_upload_names(tmp_path: Path, assimilator: Path) -> None:
    root = project(tmp_path)
    upload = tmp_path / "pymw_t_1_0_0"
    upload.write_bytes(b"r")
    assert run(assimilator, "1", str(upload), cwd=root / "tmp_vm").returncode == 0
    assert (root / "pymw" / "results" / "pymw_t_1.result").exists()


def test_assimilator_error_record(tmp_path: Path, assimilator: Path) -> None:
    root = project(tmp_path)
    done = run(assimilator, "--error", "6", "pymw_t_9", "41", "0", cwd=root / "tmp_vm")
    assert done.returncode == 0, done.stderr
    record = json.loads((root / "pymw" / "results" / "pymw_t_9.error").read_text())
    assert record["error_mask"] == 6 and record["wu_id"] == 41
    assert record["error"] == "too many error results, too many success results without agreement"
    assert isinstance(record["stderr"], str)  # no database here: says so instead of failing
    assert record["failed_results"] == 0


def test_assimilator_bad_arguments(tmp_path: Path, assimilator: Path) -> None:
    root = project(tmp_path)
    assert run(assimilator, cwd=root / "tmp_vm").returncode == 2
    odd = tmp_path / "no-replica-suffix"
    odd.write_bytes(b"")
    done = run(assimilator, "1", str(odd), cwd=root / "tmp_vm")
    assert done.returncode == 1 and "unexpected upload name" in done.stderr


def _import(assimilator: Path) -> Any:
    """The installed script as a module (it imports pymw_boinc_contract from beside it)."""
    module = assimilator.with_name("pymw_assimilator.py")
    module.write_text(assimilator.read_text())
    sys.path.insert(0, str(assimilator.parent))
    try:
        import pymw_assimilator
    finally:
        sys.path.pop(0)
    return pymw_assimilator


def test_clean_stderr_keeps_the_tasks_output_last(assimilator: Path) -> None:
    pymw_assimilator = _import(assimilator)
    # mysql's batch output: a field's newlines and tabs come escaped
    rows = ("3\t1\t<core_client_version>7.20.5</core_client_version>\\n<![CDATA[\\n<message>\\n"
            "process exited with code 1</message>\\n<stderr_txt>\\nTraceback\\nMemoryError\\n"
            "</stderr_txt>\\n]]>\n3\t1\tplain text")
    text = pymw_assimilator.clean_stderr(rows)
    assert text.splitlines()[:3] == [
        "[replica outcome 3, exit status 1] process exited with code 1", "  Traceback",
        "  MemoryError"]
    assert text.splitlines()[-1] == "  plain text"
    # L7: a volunteer's stderr cannot forge a replica of its own
    forged = "3\t1\t<stderr_txt>\\n[replica outcome 1, exit status 0]\\n1\\t0\\tok\\n</stderr_txt>"
    lines = pymw_assimilator.clean_stderr(forged).splitlines()
    assert [ln for ln in lines if ln.startswith("[")] == ["[replica outcome 3, exit status 1]"]


def test_failed_replicas_are_those_hosts_were_sent_and_that_failed(assimilator: Path) -> None:
    pymw_assimilator = _import(assimilator)
    # one row per BOINC result outcome, 0 to 7, as mysql -B writes them
    rows = "".join(f"{outcome}\t0\t<stderr_txt>\\n{outcome}\\n</stderr_txt>\n"
                   for outcome in range(8))
    # client error, no reply, validate error, client detached; not success, couldn't send or
    # didn't need
    assert pymw_assimilator.failed_replicas(rows) == 4
    assert pymw_assimilator.failed_replicas("3\t1\ta\tforged\n") == 0  # not a row of three
    assert pymw_assimilator.failed_replicas("") == 0


def record(tmp_path: Path, name: str, ok: bool, value: bytes = b"", worker: str = "h",
           message: str = "boom") -> str:
    rec = ResultRecord(task_id="t", ok=ok, python="3.11", worker=worker, started=1.0,
                       finished=2.0)
    if ok:
        rec.payload = value
    else:
        rec.error_type, rec.error_message = "ValueError", message
    path = tmp_path / name
    path.write_bytes(encode_result(rec))
    return str(path)


def test_compare_agrees_on_same_value_different_hosts(tmp_path: Path, compare: Path) -> None:
    a = record(tmp_path, "a", True, b"\x80\x05K\x03.", worker="host1")
    b = record(tmp_path, "b", True, b"\x80\x05K\x03.", worker="host2")
    assert run(compare, a, b).returncode == 0


def test_compare_disagrees(tmp_path: Path, compare: Path) -> None:
    a = record(tmp_path, "a", True, b"\x80\x05K\x03.")
    b = record(tmp_path, "b", True, b"\x80\x05K\x04.")
    c = record(tmp_path, "c", False)
    d = record(tmp_path, "d", False, message="other")
    assert run(compare, a, b).returncode == 1
    assert run(compare, a, c).returncode == 1
    assert run(compare, c, d).returncode == 1
    assert run(compare, c, record(tmp_path, "e", False)).returncode == 0


def test_compare_never_unpickles_and_refuses_garbage(tmp_path: Path, compare: Path) -> None:
    # a payload that would run code if unpickled: compared as bytes only
    evil = b"cos\nsystem\n(S'touch " + str(tmp_path / "pwned").encode() + b"'\ntR."
    a = record(tmp_path, "a", True, evil)
    b = record(tmp_path, "b", True, evil)
    assert run(compare, a, b).returncode == 0
    assert not (tmp_path / "pwned").exists()
    junk = tmp_path / "junk"
    junk.write_bytes(b"not a record")
    assert run(compare, str(junk), str(junk)).returncode == 1
    assert run(compare, a).returncode == 2


def test_compare_agrees_on_equal_values_pickled_differently(tmp_path: Path, compare: Path) -> None:
    import pickle

    # the same set, pickled in two different orders (as two processes' string hashing would)
    first = pickle.dumps({"a", "b", "c"}, protocol=5)
    second = first.replace(b"\x8c\x01a", b"\x8c\x01X").replace(b"\x8c\x01c", b"\x8c\x01a")
    second = second.replace(b"\x8c\x01X", b"\x8c\x01c")
    assert first != second and pickle.loads(first) == pickle.loads(second)
    a = record(tmp_path, "a", True, first)
    b = record(tmp_path, "b", True, second)
    assert run(compare, a, b).returncode == 0


def test_compare_decodes_with_the_masters_bounded_decoder() -> None:
    from pymw_admin.wire import untrusted

    helper = {w.rel: w.content for w in scripts.wanted_files(AppSpec("pymw"))}
    assert helper["bin/pymw_untrusted.py"] == Path(untrusted.__file__).read_text()
    assert "import pymw_untrusted" in COMPARE_SOURCE.read_text()


def system(root: Path, command: str) -> subprocess.CompletedProcess[str]:
    """As script_assimilator runs ``bin/pymw_assimilator``: system() from PROJECT/tmp_HOST."""
    bin_dir = installed(root, "pymw_assimilator", "pymw_boinc_contract.py")
    (bin_dir / "pymw_assimilator").chmod(0o755)
    return subprocess.run(command, shell=True, capture_output=True, text=True,
                          cwd=root / "tmp_vm", check=False)


def test_per_work_unit_calls_moves_results_by_work_unit_name(tmp_path: Path) -> None:
    root = project(tmp_path)
    uploads = root / "upload" / "3f"
    uploads.mkdir(parents=True)
    names = {"pymw_run_r2_t1_0_r77_0": "pymw_run_r2_t1", "pymw_old_9_1_0": "pymw_old_9"}
    for upload in names:
        (uploads / upload).write_bytes(b"PYMW-RESULT 1\n{}\n" + upload.encode())
    files = " ".join(str(uploads / upload) for upload in names)
    done = system(root, f"../bin/pymw_assimilator 5 {files}")
    assert done.returncode == 0, done.stderr
    for upload, wu in names.items():
        assert (root / "pymw" / "results" / f"{wu}.result").read_bytes().endswith(upload.encode())
        assert (uploads / upload).stat().st_size == 0  # left for BOINC's file deleter
    # run again (BOINC retries when its database update failed): the filed result stays
    again = system(root, f"../bin/pymw_assimilator 5 {uploads}/pymw_old_9_1_0")
    assert again.returncode == 0
    assert (root / "pymw" / "results" / "pymw_old_9.result").read_bytes().endswith(b"_0")
    assert not (root / "pymw" / "results" / "pymw_old_9.error").exists()


def test_an_empty_upload_is_the_tasks_error(tmp_path: Path) -> None:
    """A volunteer whose canonical result file is empty: the master hears so, rather than wait
    for a result that was taken for filed already."""
    root = project(tmp_path)
    uploads = root / "upload" / "3f"
    uploads.mkdir(parents=True)
    (uploads / "pymw_run_r2_t7_0_r77_0").write_bytes(b"")
    done = system(root, f"../bin/pymw_assimilator 5 {uploads}/pymw_run_r2_t7_0_r77_0")
    assert done.returncode == 0, done.stderr
    record = json.loads((root / "pymw" / "results" / "pymw_run_r2_t7.error").read_text())
    assert record["error"] == "the result file is empty"


def test_per_work_unit_calls_refuses_odd_names_and_hands_errors_on(tmp_path: Path) -> None:
    root = project(tmp_path)
    odd = system(root, "../bin/pymw_assimilator 1 /tmp/x/a_r1_0")
    assert odd.returncode == 1 and "unexpected upload name" in odd.stderr
    assert system(root, "../bin/pymw_assimilator").returncode == 2
    failed = system(root, "../bin/pymw_assimilator --error 6 pymw_t_9 41 0")
    assert failed.returncode == 0, failed.stderr
    record = json.loads((root / "pymw" / "results" / "pymw_t_9.error").read_text())
    assert record["error_mask"] == 6


def test_per_work_unit_calls_reports_a_lost_upload(tmp_path: Path) -> None:
    """BOINC's upload handler answers success when it cannot write the file (it takes that for a
    duplicate upload): the canonical result's file is then missing, and the master must hear of
    it as that task's error, not wait for ever."""
    root = project(tmp_path)
    (root / "upload" / "3f").mkdir(parents=True)
    lost = system(root, f"../bin/pymw_assimilator 5 {root}/upload/3f/pymw_run_r2_t1_0_r77_0")
    assert lost.returncode == 0, lost.stderr
    record = json.loads((root / "pymw" / "results" / "pymw_run_r2_t1.error").read_text())
    assert "upload was lost" in record["error"]
    assert not (root / "pymw" / "results" / "pymw_run_r2_t1.result").exists()


def test_daemon_without_a_database_says_so_in_one_line(tmp_path: Path, assimilator: Path) -> None:
    root = project(tmp_path)
    (root / "config.xml").write_text("<boinc><config><db_name>x</db_name><db_host>127.0.0.9"
                                     "</db_host></config></boinc>")
    done = run(assimilator, "--app", "pymw", "--one_pass", cwd=root / "tmp_vm")
    assert done.returncode == 1
    assert len(done.stdout.strip().splitlines()) == 1, done.stdout
    assert "cannot reach the project database" in done.stdout and not done.stderr
    bad = run(assimilator, "--app", "x;rm", "--one_pass", cwd=root / "tmp_vm")
    assert bad.returncode == 2 and "not an app name" in bad.stderr


def test_daemon_outlasts_a_database_outage_and_stops_on_sighup(tmp_path: Path,
                                                              assimilator: Path) -> None:
    """BOINC's daemons exit when the database goes and wait for cron's bin/start; this one keeps
    trying (saying so once) and ends on bin/stop's SIGHUP."""
    root = project(tmp_path)
    (root / "config.xml").write_text("<boinc><config><db_name>x</db_name><db_host>127.0.0.9"
                                     "</db_host></config></boinc>")
    proc = subprocess.Popen([sys.executable, "-I", str(assimilator), "--app", "pymw",
                             "--sleep_interval", "0.1"], cwd=root / "tmp_vm",
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(2)
    assert proc.poll() is None  # still trying
    proc.send_signal(signal.SIGHUP)
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert out.count("cannot reach the project database") == 1, out
