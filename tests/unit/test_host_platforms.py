"""Host platforms from BOINC's host table, and the share the deployed versions serve."""

from __future__ import annotations

import pytest

from pymw_admin.admin import platforms
from pymw_admin.admin import status as ps


@pytest.mark.parametrize(("os_name", "vendor", "model", "platform"), [
    ("Linux Debian", "GenuineIntel", "Intel(R) Xeon(R) CPU", "x86_64-pc-linux-gnu"),
    ("Linux Ubuntu", "ARM", "Cortex-A72 [Impl 0x41 Arch 8]", "aarch64-unknown-linux-gnu"),
    ("Microsoft Windows 11", "AuthenticAMD", "AMD Ryzen 7", "windows_x86_64"),
    ("Microsoft Windows 11", "Qualcomm", "Snapdragon X Elite", "windows_arm64"),
    ("Darwin", "Apple", "Apple M2", "arm64-apple-darwin"),
    ("Darwin", "GenuineIntel", "Intel(R) Core(TM) i7", "x86_64-apple-darwin"),
    ("Android", "ARM", "Cortex-A53", ""),
    ("", "", "", ""),
])
def test_host_platform(os_name: str, vendor: str, model: str, platform: str) -> None:
    assert platforms.host_platform(os_name, vendor, model) == platform


def test_alternates_count() -> None:
    assert platforms.can_serve("arm64-apple-darwin", {"x86_64-apple-darwin"})
    assert platforms.can_serve("windows_x86_64", {"windows_intelx86"})
    assert not platforms.can_serve("x86_64-apple-darwin", {"arm64-apple-darwin"})
    assert not platforms.can_serve("", {"x86_64-pc-linux-gnu"})
    assert platforms.served_share(["windows_x86_64", "x86_64-pc-linux-gnu", ""],
                                  {"x86_64-pc-linux-gnu"}) == (1, 3)


def test_status_reads_versions_and_host_kinds() -> None:
    out = ("@versions\naarch64-unknown-linux-gnu\nx86_64-pc-linux-gnu\n"
           "@host_kinds\nLinux Debian\tGenuineIntel\tIntel Xeon\t3\n"
           "Microsoft Windows 10\tGenuineIntel\tIntel Core\t2\n"
           "Linux Raspbian\tARM\tCortex-A72\t1\n")
    reach = ps.parse_reach(out)
    assert reach.platforms == ["aarch64-unknown-linux-gnu", "x86_64-pc-linux-gnu"]
    assert reach.as_dict() == {
        "platforms": ["aarch64-unknown-linux-gnu", "x86_64-pc-linux-gnu"],
        "hosts_by_platform": {"x86_64-pc-linux-gnu": 3, "windows_x86_64": 2,
                              "aarch64-unknown-linux-gnu": 1},
        "hosts": 6, "hosts_served": 4, "share": 0.667}
    assert ps.parse_reach("@versions\n").as_dict()["share"] is None


def test_status_line() -> None:
    from pymw_admin.cli.status import reach_line

    reach = ps.VersionReach(["x86_64-pc-linux-gnu"], {"x86_64-pc-linux-gnu": 1,
                                                      "windows_x86_64": 1})
    assert str(reach_line(reach)) == ("app versions for: x86_64-pc-linux-gnu; they serve 1 of "
                                      "2 hosts (50%; hosts: windows_x86_64 1, "
                                      "x86_64-pc-linux-gnu 1)")
    assert "no volunteer hosts yet" in str(reach_line(ps.VersionReach()))
