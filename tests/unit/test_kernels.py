"""The chapters' kernels start over Unix sockets of their own (tests/kernels.py), so that two kernels
started at the same moment cannot be handed the same TCP port."""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.kernels import IpcKernelManager, patch_nbval

pytestmark = pytest.mark.skipif(os.name != "posix", reason="ZeroMQ's ipc transport needs Unix sockets")


def _start_and_ask(_):
    km = IpcKernelManager(kernel_name="python3")
    km.start_kernel()
    kc = km.client()
    kc.start_channels()
    try:
        kc.wait_for_ready(timeout=60)
        reply = kc.execute("1 + 1", reply=True, timeout=60)
        info = km.get_connection_info()
        files = [f"{km.ip}-{info[p]}" for p in ("shell_port", "iopub_port", "stdin_port", "control_port", "hb_port")]
        on_disk = [os.path.exists(f) for f in files]
        return info["transport"], km.ip, reply["content"]["status"], on_disk, files
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


def test_two_kernels_started_together_each_get_their_own_sockets():
    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(_start_and_ask, range(2)))
    (t1, ip1, s1, disk1, files1), (t2, ip2, s2, disk2, files2) = results
    assert t1 == t2 == "ipc"
    assert ip1 != ip2 and os.path.isabs(ip1) and os.path.isabs(ip2)
    assert s1 == s2 == "ok"
    assert all(disk1) and all(disk2), "the kernels listen on the socket files of their connection info"
    # macOS allows 104 bytes for a socket path; the prefix must leave room for "-<n>".
    assert len(ip1.encode()) + 6 < 104
    # shutdown removes them again
    assert not any(os.path.exists(f) for f in files1 + files2)


def test_nbval_starts_its_kernels_with_the_ipc_manager(monkeypatch):
    import nbval.kernel

    monkeypatch.setattr(nbval.kernel, "KernelManager", nbval.kernel.KernelManager)
    patch_nbval()
    assert nbval.kernel.KernelManager is IpcKernelManager


def test_an_explicit_transport_or_ip_is_kept():
    km = IpcKernelManager(transport="tcp")
    assert km.transport == "tcp" and km.ip in ("127.0.0.1", "localhost", "::1")
    km = IpcKernelManager(ip="/tmp/somewhere")
    assert km.transport == "ipc" and km.ip == "/tmp/somewhere"
