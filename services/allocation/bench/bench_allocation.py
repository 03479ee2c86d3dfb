"""``make bench-allocation``: the per-flat heat kernel, numba against numpy, in one run.

The kernel is :func:`balans_allocation.kernels.heat_from_volume` (layouts 1b and 2a:
heat = V · ρ · Δh with missing, out-of-range and absurd temperatures estimated), on a dense
[hour, flat] layout with ~3% faulty temperatures. The baseline is its numpy twin. The
machine's memory bandwidth is measured in the same run by copying a large array, and
``bandwidth_fraction`` is the bytes the kernel must move per second (inputs read once,
outputs written once) over that bandwidth.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import kernels_numpy
import numpy as np

from balans_allocation import kernels
from balans_physics.water import property_tables

# volume float32 + t_flow, t_return int16 read; heat float32 + flags uint16 written
BYTES_PER_FLAT_HOUR = 4 + 2 + 2 + 4 + 2
MAX_DT_CENTI = 6000


def _best_seconds(run: Callable[[], object], repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - started)
    return best


def copy_bandwidth_bytes_per_s(megabytes: int = 1024, repeats: int = 5) -> float:
    """Read + write bytes per second of a large array copy (the machine's practical peak)."""
    src = np.ones(megabytes * 2**20 // 8)
    dst = np.empty_like(src)
    seconds = _best_seconds(lambda: np.copyto(dst, src), repeats)
    return 2 * src.nbytes / seconds


def _inputs(hours: int, flats: int, seed: int = 1) -> tuple:
    rng = np.random.default_rng(seed)
    volume = rng.random((hours, flats), dtype=np.float32) * 0.02
    t_flow = rng.integers(5500, 8000, size=(hours, flats), dtype=np.int16)
    t_return = (t_flow - rng.integers(500, 2500, size=(hours, flats), dtype=np.int16)).astype(
        np.int16
    )
    faulty = rng.random((hours, flats)) < 0.03
    t_flow[faulty] = kernels.MISSING_TEMP
    fb_flow = np.full((hours, 1), 7000, dtype=np.int16)
    fb_return = np.full((hours, 1), 5000, dtype=np.int16)
    group = np.zeros(flats, dtype=np.int32)
    rho, enthalpy = property_tables()
    return (volume, t_flow, t_return, fb_flow, fb_return, group, False, rho, enthalpy,
            MAX_DT_CENTI)  # fmt: skip


def race(hours: int, flats: int, repeats: int, bandwidth: float) -> tuple[float, float, float]:
    """Flat-hours per second of numba and numpy on the same inputs, and the bandwidth
    fraction the numba run reaches."""
    args = _inputs(hours, flats)
    heat = np.empty((hours, flats), dtype=np.float32)
    flags = np.empty((hours, flats), dtype=np.uint16)
    kernels.heat_from_volume_into(*args, heat, flags)  # compile; first touch of the outputs
    numba_s = _best_seconds(lambda: kernels.heat_from_volume_into(*args, heat, flags), repeats)
    numpy_s = _best_seconds(lambda: kernels_numpy.heat_from_volume(*args), max(1, repeats // 2))
    n = hours * flats
    fraction = n * BYTES_PER_FLAT_HOUR / numba_s / bandwidth
    return n / numba_s, n / numpy_s, fraction


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--flats", type=int, default=2_000_000)
    parser.add_argument("--hours", type=int, default=24)
    parser.add_argument("--month-flats", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    bandwidth = copy_bandwidth_bytes_per_s()
    print(f"memory bandwidth (array copy, read+write): {bandwidth / 1e9:.1f} GB/s")
    month = race(720, args.month_flats, args.repeats, bandwidth)
    print(
        f"month: {args.month_flats} flats x 720 h: numba {month[0]:.3g} flat-h/s, "
        f"numpy {month[1]:.3g} flat-h/s, ratio {month[0] / month[1]:.1f}, "
        f"bandwidth fraction {month[2]:.2f}"
    )
    numba_rate, numpy_rate, fraction = race(args.hours, args.flats, args.repeats, bandwidth)
    print(f"day: {args.flats} flats x {args.hours} h, {BYTES_PER_FLAT_HOUR} bytes per flat-hour")
    print(
        f"allocation numba_flat_hours_per_s={numba_rate:.0f} "
        f"numpy_flat_hours_per_s={numpy_rate:.0f} ratio={numba_rate / numpy_rate:.2f} "
        f"bandwidth_fraction={fraction:.2f}"
    )


if __name__ == "__main__":
    main()
