"""rehearse --bundle through the Master API, and the app version made from the real bundle."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from lxml import etree

from pymw_admin.bundles import version_xml
from pymw_admin.bundles.manifest import Bundle, hash_file
from pymw_admin.interfaces.bundle import BundleInterface
from pymw_admin.runtime import Master

REPO = Path(__file__).resolve().parents[3]
pytestmark = pytest.mark.bundle


def square_and_report(x: int) -> int:
    from pymw_admin.bundles import boinc

    boinc.fraction_done(0.5)
    return x * x


def fails(x: int) -> int:
    raise ZeroDivisionError(f"no {x}")


def test_master_api_over_bundle_slots(bundle: Bundle) -> None:
    with Master(interface=BundleInterface(bundle, num_workers=2)) as master:
        assert master.map(square_and_report, range(5)) == [0, 1, 4, 9, 16]
        task = master.submit_task(fails, input_data=(7,))
        with pytest.raises(Exception) as info:
            master.get_result(task)
    assert "no 7" in str(info.value)


def test_rehearse_cli_with_bundle(bundle: Bundle, tmp_path: Path) -> None:
    script = REPO / "examples" / "monte_pi.py"
    env = dict(os.environ, PYMW_BUNDLE=str(bundle.root))
    done = subprocess.run(
        [sys.executable, "-m", "pymw_admin.cli", "rehearse", str(script), "--bundle", "-n", "2",
         "-q", "--", "--tasks", "4", "--darts", "20000"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    pi = float(done.stdout.split("pi is about")[1].split()[0])
    assert abs(pi - 3.14159) < 0.1


def test_rehearse_without_a_bundle_is_one_line(tmp_path: Path) -> None:
    env = dict(os.environ, PYMW_BUNDLE=str(tmp_path / "none"))
    done = subprocess.run(
        [sys.executable, "-m", "pymw_admin.cli", "rehearse", str(REPO / "examples" / "monte_pi.py"),
         "--bundle", "-q"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode != 0
    assert "no built bundle at" in done.stderr
    assert "Traceback" not in done.stderr


def test_version_xml_lists_every_file(bundle: Bundle, tmp_path: Path) -> None:
    path = version_xml.stage(bundle.manifest, bundle.dir, tmp_path / "app" / "1.0")
    root = etree.parse(str(path)).getroot()
    assert root.tag == "version"
    files = root.findall("file")
    assert len(files) == len(bundle.manifest.files)
    first = files[0]
    assert first.find("main_program") is not None
    assert first.findtext("logical_name") == bundle.manifest.main_program
    assert sum(f.find("main_program") is not None for f in files) == 1
    assert all(f.find("copy_file") is not None for f in files)
    names = version_xml.logical_names(root)
    assert set(names) == set(bundle.manifest.files)
    assert len(set(names.values())) == len(names)  # physical names are unique
    for logical, physical in names.items():
        staged = tmp_path / "app" / "1.0" / physical
        assert hash_file(staged) == bundle.manifest.files[logical].sha256
    # update_versions takes "executable" from the file mode: the main program keeps it
    assert os.access(tmp_path / "app" / "1.0" / names[bundle.manifest.main_program], os.X_OK)
