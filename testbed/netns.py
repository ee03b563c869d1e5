"""A test host's own address: a network namespace joined to this machine by a veth pair.

    this machine: HOST_IF (host_addr/24) <--veth--> VM_IF (vm_addr/24) in namespace NETNS

Idempotent, and whole again after half of it went (a namespace removed while one of its
processes held it keeps the pair's far end, and this machine's end outlives a new namespace).
"""

from __future__ import annotations

import subprocess


def _sh(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), check=check, capture_output=True, text=True)


def join(netns: str, host_if: str, vm_if: str, host_addr: str, vm_addr: str) -> None:
    if netns not in _sh("ip", "netns", "list").stdout.split():
        _sh("ip", "netns", "add", netns)
    here = _sh("ip", "link", "show", host_if, check=False).returncode == 0
    there = _sh("ip", "netns", "exec", netns, "ip", "link", "show", vm_if,
                check=False).returncode == 0
    if not (here and there):
        if here:
            _sh("ip", "link", "del", host_if)  # its peer is in no namespace we can reach
        _sh("ip", "link", "add", host_if, "type", "veth", "peer", "name", vm_if)
        _sh("ip", "link", "set", vm_if, "netns", netns)
        _sh("ip", "addr", "add", f"{host_addr}/24", "dev", host_if)
        _sh("ip", "netns", "exec", netns, "ip", "addr", "add", f"{vm_addr}/24", "dev", vm_if)
    _sh("ip", "link", "set", host_if, "up")
    _sh("ip", "netns", "exec", netns, "ip", "link", "set", vm_if, "up")
    _sh("ip", "netns", "exec", netns, "ip", "link", "set", "lo", "up")
