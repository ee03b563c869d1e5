"""PyBOINC bundle: size and start-up time against plain ``python -c "import cloudpickle"``.

    python benchmarks/bundle_startup.py [--bundle DIST/PLATFORM] [--runs 10]

Uses the bundle at ``--bundle`` (default: the testbed's, built when missing). Start-up is the median
of ``--runs`` runs, each side interleaved in the same run: (i) the bundle printing ``--about``
(interpreter + worker + cloudpickle imported) next to ``python -c "import cloudpickle"``; (ii) one
no-op task end to end (read, run, write the result, finish) by the bundle next to
``python -m pymw_admin.worker.run``. Targets: start-up <= 100 ms, size <= 40 MB.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from pymw_admin.bundles.manifest import Bundle, open_bundle
from pymw_admin.wire.encoding import encode_task

START_TARGET_MS = 100.0
SIZE_TARGET_MB = 40.0


def noop() -> int:
    return 0


def elapsed(cmd: list[str], cwd: str) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, cwd=cwd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def du(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bundle", type=Path, default=None)
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    if args.bundle is not None:
        bundle: Bundle = open_bundle(args.bundle)
    else:
        sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
        import testbed.bundle

        bundle = testbed.bundle.up()
    exe = str(bundle.executable)
    with tempfile.TemporaryDirectory() as tmp:
        Path(tmp, "task").write_bytes(encode_task("b1", noop))
        pairs = {
            "start-up": ([exe, "--about"], [sys.executable, "-c", "import cloudpickle"]),
            "one no-op task": (
                ["env", "-i", exe, "task", "result"],
                [sys.executable, "-m", "pymw_admin.worker.run", "task", "result"],
            ),
        }
        times: dict[str, tuple[list[float], list[float]]] = {k: ([], []) for k in pairs}
        for cmd_pair in pairs.values():  # warm the page cache for both sides
            elapsed(cmd_pair[0], tmp)
            elapsed(cmd_pair[1], tmp)
        for _ in range(args.runs):
            for name, (ours, peer) in pairs.items():
                times[name][0].append(elapsed(ours, tmp))
                times[name][1].append(elapsed(peer, tmp))
    ok = True
    for name, (ours_t, peer_t) in times.items():
        ours_ms = statistics.median(ours_t) * 1000
        peer_ms = statistics.median(peer_t) * 1000
        verdict = "meets" if ours_ms <= START_TARGET_MS else "MISSES"
        ok = ok and (name != "start-up" or ours_ms <= START_TARGET_MS)
        peer_name = "python -c 'import cloudpickle'" if name == "start-up" else "python worker"
        print(f"{name}: bundle {ours_ms:.0f} ms, {peer_name} {peer_ms:.0f} ms "
              f"(median of {args.runs}); ratio {ours_ms / peer_ms:.2f}x; "
              f"{verdict} target {START_TARGET_MS:.0f} ms")
    size_mb = du(bundle.dir) / 1e6
    size_ok = size_mb <= SIZE_TARGET_MB
    print(f"size: {size_mb:.1f} MB in {len(bundle.manifest.files)} files "
          f"({'meets' if size_ok else 'MISSES'} target {SIZE_TARGET_MB:.0f} MB); "
          f"{bundle.manifest.platform}, Python {bundle.manifest.python_full}, "
          f"libboinc_api bundled: {bundle.manifest.boinc_library}")
    return 0 if ok and size_ok else 1


if __name__ == "__main__":
    sys.exit(main())
