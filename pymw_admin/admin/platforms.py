"""Which BOINC platform a volunteer host is, and whether the deployed app versions can serve it.

BOINC's host table keeps no platform: a client names its platforms in each scheduler request, and
the scheduler keeps only ``os_name``, ``p_vendor`` and ``p_model``. The platform is read back from
those (the client's own strings: "Microsoft Windows 11", "Darwin", "Linux Debian"; "GenuineIntel",
"ARM", "Apple M2" ...). A client also accepts its platform's alternates (client/cs_platforms.cpp):
64-bit x86 Linux and Windows run their 32-bit versions, Apple silicon runs x86_64 macOS ones.
"""

from __future__ import annotations

from collections.abc import Iterable

# a host's platform -> what its client also accepts
ALTERNATES: dict[str, tuple[str, ...]] = {
    "x86_64-pc-linux-gnu": ("i686-pc-linux-gnu",),
    "windows_x86_64": ("windows_intelx86",),
    "arm64-apple-darwin": ("x86_64-apple-darwin",),
    "aarch64-unknown-linux-gnu": ("arm-unknown-linux-gnueabihf",),
    "windows_arm64": ("windows_x86_64", "windows_intelx86"),
}
_ARM_WORDS = ("arm", "aarch64", "cortex", "neoverse", "apple m", "qualcomm", "snapdragon")


def _is_arm(p_vendor: str, p_model: str) -> bool:
    text = f"{p_vendor} {p_model}".lower()
    return any(word in text for word in _ARM_WORDS)


def host_platform(os_name: str, p_vendor: str, p_model: str) -> str:
    """The host's BOINC platform from its host-table fields; empty when it cannot be told."""
    system = (os_name or "").lower()
    arm = _is_arm(p_vendor or "", p_model or "")
    if "windows" in system:
        return "windows_arm64" if arm else "windows_x86_64"
    if "darwin" in system or "mac" in system:
        apple = arm or "apple" in (p_vendor or "").lower()
        return "arm64-apple-darwin" if apple else "x86_64-apple-darwin"
    if "android" in system:
        return ""
    if "linux" in system:
        return "aarch64-unknown-linux-gnu" if arm else "x86_64-pc-linux-gnu"
    return ""


def can_serve(platform: str, deployed: Iterable[str]) -> bool:
    """Whether an app version of one of the ``deployed`` platforms runs on a ``platform`` host."""
    have = set(deployed)
    return bool(platform) and (platform in have or any(a in have for a in
                                                       ALTERNATES.get(platform, ())))


def served_share(host_platforms: Iterable[str], deployed: Iterable[str]) -> tuple[int, int]:
    """``(hosts the deployed versions can serve, hosts)``."""
    have = set(deployed)
    platforms = list(host_platforms)
    return sum(1 for p in platforms if can_serve(p, have)), len(platforms)
