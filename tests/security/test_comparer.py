"""L1 and the docs' claim: replicas are compared as canonical, strictly typed bytes by a bounded
decoder, and pymw_compare answers promptly on hostile input (BOINC's validator waits for it)."""

from __future__ import annotations

import pickle
import subprocess
import sys
from pathlib import Path

import pytest

from pymw_admin.wire import encoding
from tests.security.hostile_pickles import CASES, Case


def record(tmp_path: Path, name: str, payload: bytes) -> str:
    path = tmp_path / name
    path.write_bytes(encoding.encode_result(encoding.ResultRecord(
        task_id="t", ok=True, python="3.11", payload=payload)))
    return str(path)


def agree(compare: Path, first: str, second: str) -> bool:
    done = subprocess.run([sys.executable, "-I", str(compare), first, second],
                          capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode in (0, 1), done.stderr
    return done.returncode == 0


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_hostile_replicas_get_an_answer(tmp_path: Path, compare: Path, case: Case) -> None:
    hostile = record(tmp_path, "hostile", case.make())
    honest = record(tmp_path, "honest", pickle.dumps(3))
    assert agree(compare, hostile, honest) is False
    assert agree(compare, hostile, hostile) is True  # identical bytes still agree


def test_values_are_strictly_typed(tmp_path: Path, compare: Path) -> None:
    import decimal

    values = {"int": 1, "bool": True, "float": 1.0, "decimal": decimal.Decimal(1)}
    paths = {k: record(tmp_path, k, pickle.dumps(v, 5)) for k, v in values.items()}
    for a in values:
        for b in values:
            assert agree(compare, paths[a], paths[b]) is (a == b), (a, b)


def test_nan_agrees_with_itself(tmp_path: Path, compare: Path) -> None:
    a = record(tmp_path, "a", pickle.dumps([float("nan"), 1], 5))
    b = record(tmp_path, "b", pickle.dumps([float("nan"), 1], 4))
    assert agree(compare, a, b) is True


def test_sets_agree_in_any_order(tmp_path: Path, compare: Path) -> None:
    first = pickle.dumps({"a", ("b", 1), frozenset({2, 3})}, 5)
    items = list(pickle.loads(first))
    second = pickle.dumps(set(reversed(items)), 4)
    assert agree(compare, record(tmp_path, "a", first), record(tmp_path, "b", second))


def test_identical_payloads_agree_without_decoding(tmp_path: Path, compare: Path) -> None:
    # replicas of a deterministic task: the same payload under headers that differ (host, times)
    payload = pickle.dumps([(i, float(i), str(i)) for i in range(1000)])
    paths = []
    for worker in ("host-a", "host-b"):
        path = tmp_path / worker
        path.write_bytes(encoding.encode_result(encoding.ResultRecord(
            task_id="t", ok=True, python="3.11", worker=worker, payload=payload)))
        paths.append(str(path))
    probe = ("import importlib.machinery as m, importlib.util as u\n"
             f"loader = m.SourceFileLoader('pymw_compare', {str(compare)!r})\n"
             "c = u.module_from_spec(u.spec_from_loader('pymw_compare', loader))\n"
             "loader.exec_module(c)\n"
             f"print(c.main({paths!r}), c.pymw_untrusted._regexes.cache_info().currsize)")
    done = subprocess.run([sys.executable, "-I", "-c", probe], capture_output=True, text=True,
                          timeout=30, check=False)
    assert done.stdout.split() == ["0", "0"], done.stderr  # agreed; no pattern was compiled


def test_a_failed_record_never_agrees_by_payload(tmp_path: Path, compare: Path) -> None:
    failed = tmp_path / "failed"
    failed.write_bytes(encoding.encode_result(encoding.ResultRecord(
        task_id="t", ok=False, python="3.11", error_type="ValueError", error_message="x",
        payload=pickle.dumps(3))))
    assert agree(compare, str(failed), record(tmp_path, "ok", pickle.dumps(3))) is False
