"""Every unit test runs once on every device present: the CPU always, and CUDA and MPS where
PyTorch finds them (the library's dtype and device rule, ``cb.utils``).

On an accelerator the device becomes torch's default device for the test
(``torch.set_default_device``), so the test runs in full there: its tensors, the library's
intermediate tensors and its results live on that device, and a ``.numpy()`` on a GPU tensor or a
tensor made on the wrong device fails the test. On the CPU nothing is set (the default already is
the CPU, and a default-device mode would slow every call). Test ids end in the device, e.g.
``test_hsic_is_the_trace_formula[cpu]``.
"""
import pytest
import torch


def _devices() -> list[str]:
    devices = ["cpu"]
    if torch.cuda.is_available():
        devices.append("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        devices.append("mps")
    return devices


@pytest.fixture(autouse=True, params=_devices())
def device(request) -> torch.device:
    """The device the test runs on (also torch's default device on an accelerator)."""
    name = request.param
    if name != "cpu":
        torch.set_default_device(name)
    try:
        yield torch.device(name)
    finally:
        if name != "cpu":
            torch.set_default_device(None)


@pytest.fixture(scope="module")
def one_thread():
    """One torch thread for a module (``pytestmark = pytest.mark.usefixtures("one_thread")``): its
    networks are tiny, so one thread is faster than two and does not fight other processes."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
