"""PyBOINC bundles: size per platform, and start-up here (natively, under wine, under qemu-user).

    python benchmarks/bundle_startup.py [--platform P ...] [--bundle DIST/PLATFORM] [--runs 10]

Uses the testbed's bundles (built when missing): this machine's, windows_x86_64 and
aarch64-unknown-linux-gnu (``--platform`` picks some), or the one at ``--bundle``. Start-up is the
median of ``--runs`` runs, interleaved with a peer measured the same way:

* this machine's bundle: (i) ``--about`` (interpreter + worker + cloudpickle imported) next to
  ``python -c "import cloudpickle"``; (ii) one no-op task end to end (read, run, write the result,
  finish) next to ``python -m pymw_admin.worker.run``. Target: start-up <= 100 ms.
* another platform's bundle runs through this machine's runner for it: ``--about`` and one no-op
  task next to the bundle's bare interpreter starting (``python -c pass``) through the same runner,
  so the ratio is the worker's own cost. Reported, no target (emulation dominates).

Size target for every platform: <= 40 MB.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pymw_admin.bundles import debian_root, targets
from pymw_admin.bundles.manifest import Bundle, open_bundle, platform_name
from pymw_admin.wire.encoding import encode_task

START_TARGET_MS = 100.0
SIZE_TARGET_MB = 40.0
PLATFORMS = (targets.LINUX_X86_64, targets.WINDOWS_X86_64, targets.LINUX_AARCH64)


def noop() -> int:
    return 0


def elapsed(cmd: list[str], cwd: str | Path, env: dict[str, str] | None) -> float:
    start = time.perf_counter()
    # pipes, not /dev/null: Windows Python under wine cannot start with /dev/null as stdin
    subprocess.run(cmd, cwd=cwd, env=env, check=True, input=b"", capture_output=True)
    return time.perf_counter() - start


def du(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def bare_interpreter(bundle: Bundle) -> list[str]:
    """The bundle's own interpreter doing nothing, started the way the bundle starts it."""
    files = bundle.dir
    if bundle.manifest.platform == targets.WINDOWS_X86_64:
        return [str(files / "python.exe"), "-c", "pass"]
    loader = debian_root.ARCHES[bundle.manifest.platform][2]
    return [str(files / "lib" / loader), "--library-path", str(files / "lib"),
            str(files / f"bin/python{bundle.manifest.python}"), "-S", "-c", "pass"]


def measure(bundle: Bundle, runs: int) -> bool:
    platform = bundle.manifest.platform
    native = platform == platform_name()
    runner = targets.runner(platform)
    env = None
    if not native:
        import os

        env = {**os.environ, **targets.runner_env(platform), "PYTHONHOME": str(bundle.dir)}
    exe = [*runner, str(bundle.executable)]
    with tempfile.TemporaryDirectory() as tmp:
        Path(tmp, "task").write_bytes(encode_task("b1", noop))
        if native:
            pairs = {
                "start-up": ([*exe, "--about"], [sys.executable, "-c", "import cloudpickle"],
                             "python -c 'import cloudpickle'"),
                "one no-op task": (["env", "-i", *exe, "task", "result"],
                                   [sys.executable, "-m", "pymw_admin.worker.run", "task",
                                    "result"], "python worker"),
            }
        else:
            bare = [*runner, *bare_interpreter(bundle)]
            how = "wine" if runner else "qemu-user"
            task, result = str(Path(tmp, "task")), str(Path(tmp, "result"))
            pairs = {
                "start-up": ([*exe, "--about"], bare, f"bare interpreter under {how}"),
                "one no-op task": ([*exe, task, result], bare, f"bare interpreter under {how}"),
            }
        # as in a slot: the Windows launcher finds .\\python.exe in its working directory
        cwd = tmp if native else bundle.dir
        times: dict[str, tuple[list[float], list[float]]] = {k: ([], []) for k in pairs}
        for ours, peer, _name in pairs.values():  # warm caches (and wineserver) on both sides
            elapsed(ours, cwd, env)
            elapsed(peer, cwd, env)
        for _ in range(runs):
            for name, (ours, peer, _peer_name) in pairs.items():
                times[name][0].append(elapsed(ours, cwd, env))
                times[name][1].append(elapsed(peer, cwd, env))
    ok = True
    for name, (ours_t, peer_t) in times.items():
        ours_ms = statistics.median(ours_t) * 1000
        peer_ms = statistics.median(peer_t) * 1000
        verdict = ""
        if native and name == "start-up":
            ok = ours_ms <= START_TARGET_MS
            verdict = f"; {'meets' if ok else 'MISSES'} target {START_TARGET_MS:.0f} ms"
        print(f"  {name}: bundle {ours_ms:.0f} ms, {pairs[name][2]} {peer_ms:.0f} ms "
              f"(median of {runs}); ratio {ours_ms / peer_ms:.2f}x{verdict}")
    size_mb = du(bundle.dir) / 1e6
    size_ok = size_mb <= SIZE_TARGET_MB
    print(f"  size: {size_mb:.1f} MB in {len(bundle.manifest.files)} files "
          f"({'meets' if size_ok else 'MISSES'} target {SIZE_TARGET_MB:.0f} MB); "
          f"Python {bundle.manifest.python_full}; {bundle.manifest.built_with}")
    return ok and size_ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bundle", type=Path, default=None)
    parser.add_argument("--platform", action="append", choices=PLATFORMS)
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    if args.bundle is not None:
        bundles = [open_bundle(args.bundle)]
    else:
        import testbed.bundle

        bundles = [testbed.bundle.up_platform(p) for p in args.platform or PLATFORMS]
    ok = True
    for bundle in bundles:
        print(f"{bundle.manifest.platform}:")
        ok = measure(bundle, args.runs) and ok
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
