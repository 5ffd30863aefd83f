"""Kernel start-up for every tool here that runs chapters side by side.

A Jupyter client picks a kernel's five TCP ports by binding port 0 and closing the sockets again;
the kernel binds them a second or so later, when it has started. Two clients that start kernels at
the same moment can be handed the same free port in between, and the second kernel dies at start-up
with ``ZMQError: Address already in use`` (jupyter/jupyter_client#487, nteract/papermill#511). This
book's build, its nbval pass and its robustness sweep start two kernels at once, so the race showed
up as a rare failed chapter that had run no code.

:class:`IpcKernelManager` connects to the kernel over Unix domain sockets instead (ZeroMQ's ``ipc``
transport), each kernel under its own unique path, so there are no ports to share. On Windows, which
has no ``ipc`` transport, it keeps TCP.

Used by ``tests/notebooks.py`` and ``_ext/execute_book.py`` (nbclient's ``kernel_manager_class``),
and by nbval through :func:`patch_nbval` (``tests/nbval_timing.py``, or ``-p tests.kernels``).
"""
from __future__ import annotations

import os
import tempfile
import uuid

from jupyter_client.manager import KernelManager
from traitlets import default

#: ZeroMQ's ipc transport exists where Unix domain sockets do.
TRANSPORT = "ipc" if os.name == "posix" else "tcp"


class IpcKernelManager(KernelManager):
    """A :class:`jupyter_client.KernelManager` whose kernels listen on Unix sockets of their own."""

    @default("transport")
    def _transport_default(self) -> str:
        return TRANSPORT

    @default("ip")
    def _ip_default(self) -> str:
        if self.transport != "ipc":
            return super()._ip_default()
        # jupyter_client appends "-<n>" for each channel and removes the files at shutdown. A unique
        # prefix per kernel: its own default ("kernel-ipc" in the working directory) is shared by
        # every kernel started there, and a short one stays within the socket path limit (104 bytes
        # on macOS, whose temporary directory is long).
        return os.path.join(tempfile.gettempdir(), f"cbk-{uuid.uuid4().hex[:12]}")


def patch_nbval() -> None:
    """Make nbval start its kernels with :class:`IpcKernelManager` (it has no option for that)."""
    import nbval.kernel

    nbval.kernel.KernelManager = IpcKernelManager


def pytest_configure(config) -> None:  # loaded as a pytest plugin with ``-p tests.kernels``
    patch_nbval()
