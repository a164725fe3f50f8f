"""Running a layer graph: the CPU executor here, a device executor where one is chosen."""

from __future__ import annotations


from ..errors import DeviceError

DEVICES = ("cpu", "cuda", "auto")


def cuda_available() -> bool:
    """A CUDA GPU is visible (or numba's CUDA simulator is switched on)."""
    try:
        from numba import cuda

        return bool(cuda.is_available())
    except Exception:  # noqa: BLE001 - no driver, no toolkit: no GPU
        return False


def resolve_device(device: str) -> str:
    if device not in DEVICES:
        raise DeviceError(f"unknown device {device!r}; use one of {', '.join(DEVICES)}")
    if device == "auto":
        return "cuda" if cuda_available() and _cuda_backend() else "cpu"
    if device == "cuda":
        if not cuda_available():
            raise DeviceError("device 'cuda': no CUDA GPU is visible. To run the CUDA kernels without a GPU, "
                              "set NUMBA_ENABLE_CUDASIM=1 before starting Python (numba's simulator; slow, "
                              "for testing)")
        if not _cuda_backend():
            raise DeviceError("device 'cuda': numba's CUDA support (numba.cuda) does not import here; "
                              "use device='cpu'")
    return device


def _cuda_backend() -> bool:
    """numba's CUDA module imports, and with it the CUDA executor (any other ImportError is a bug: raised)."""
    try:
        from numba import cuda as _numba_cuda  # noqa: F401
    except ImportError:
        return False
    from . import cuda  # noqa: F401
    return True


def make_executor(graph, dtype: str, seed: int, device: str = "cpu"):
    if device == "cuda":
        from .cuda import CudaExecutor

        return CudaExecutor(graph, dtype, seed)
    from .executor import Executor

    return Executor(graph, dtype, seed)


__all__ = ["make_executor", "resolve_device", "cuda_available", "DEVICES"]
