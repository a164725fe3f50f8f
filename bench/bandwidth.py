"""Read bandwidth of one core from each level of the cache, and stream-step's floor.

    python bench/bandwidth.py            # GB/s over buffer sizes from 16 KiB to 64 MiB

A compiled loop sums a float32 buffer (16-wide vectors, several accumulators: fastmath)
over and over; bandwidth = bytes read / time, best of 15 short repeats (the machine is
shared), one thread. A buffer that fits a cache level is read from it once warm, so the
sizes step through L1, L2, L3 and memory. The loop issues about one vector add a cycle
(its accumulators' latency): where L1 and L2 read alike, that is the loop's cap, and the L2
figure a lower bound on L2's bandwidth (a floor from it an upper bound on the true floor). stream-step's floor is its weights read once per step, (features + units) x
4 units x 4 bytes = (64 + 128) x 512 x 4 = 393,216 bytes for LSTM 64 -> 128, over the
bandwidth of a buffer that size (L2 on a core with 1-2 MiB of it); run.py prints it beside
the measured step.
"""

from __future__ import annotations

import time

import numpy as np

STREAM_FEATURES, STREAM_UNITS = 64, 128


def stream_weight_bytes(features: int = STREAM_FEATURES, units: int = STREAM_UNITS, itemsize: int = 4) -> int:
    """Bytes of an LSTM's W and U, read once by a step: (features + units) x 4 units."""
    return (features + units) * 4 * units * itemsize


def _kernel():
    import numba

    @numba.njit(fastmath=True, cache=False)
    def sum_reps(a, reps):
        s = np.float32(0.0)
        for _ in range(reps):
            acc = np.float32(0.0)
            for i in range(a.size):
                acc += a[i]
            s += acc
        return s

    return sum_reps


def _aligned_ones(n: int) -> np.ndarray:
    """n float32 ones starting on a 64-byte line: off the line, every 64-byte vector load
    spans two lines and the figure halves (NumPy aligns to 16 bytes)."""
    raw = np.ones(n + 16, np.float32)
    skip = (-raw.ctypes.data % 64) // 4
    return raw[skip:skip + n]


def read_bandwidth(nbytes: int, seconds: float = 0.01, repeats: int = 15) -> float:
    """Bytes per second one thread reads from a buffer of nbytes (best of `repeats` runs of
    about `seconds` each, the buffer warm in whatever cache holds it)."""
    fn = _kernel()
    a = _aligned_ones(max(16, nbytes // 4))
    fn(a, 2)
    reps = max(1, int(seconds * 20e9 / a.nbytes))          # ~seconds at 20 GB/s, at least once
    best = 0.0
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn(a, reps)
        dt = time.perf_counter() - t0
        best = max(best, a.nbytes * reps / dt)
    return best


def stream_floor(step_s: float | None = None) -> dict:
    """stream-step's weights over this core's read bandwidth at their size: the time one
    step cannot go under while it reads every weight once; with step_s, how far above."""
    nbytes = stream_weight_bytes()
    bw = read_bandwidth(nbytes)
    out = {"weight_bytes": nbytes, "read_gb_s": bw / 1e9, "floor_us": 1e6 * nbytes / bw}
    if step_s:
        out["step_us"] = 1e6 * step_s
        out["step_over_floor"] = step_s * bw / nbytes
    return out


def main() -> int:
    print("one thread, float32 sum of a warm buffer, best of 15")
    print("| buffer | GB/s |\n|---|---|")
    for kib in (16, 32, 256, 384, 1024, 1536, 4096, 16384, 65536):
        print(f"| {kib} KiB | {read_bandwidth(kib * 1024) / 1e9:.0f} |", flush=True)
    f = stream_floor()
    print(f"\nstream-step's weights {f['weight_bytes']:,} bytes at {f['read_gb_s']:.0f} GB/s: "
          f"floor {f['floor_us']:.2f} µs a step")
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main())
