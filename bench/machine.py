"""The machine a benchmark ran on, and its FP32 peak."""
from __future__ import annotations

import os
import platform
from dataclasses import dataclass
from pathlib import Path

# AVX2 + FMA: two 8-wide FMA units per core, each FMA two FLOPs.
FLOP_PER_CYCLE = 32


@dataclass(frozen=True)
class Machine:
    cpu: str
    cores: int
    mhz: float
    flags: frozenset[str]

    @property
    def peak_flops(self) -> float:
        """Cores × clock × 32 FLOP/cycle (peak FP32 with AVX2 + FMA: two 8-wide fused multiply-adds a cycle)."""
        return self.cores * self.mhz * 1e6 * FLOP_PER_CYCLE

    def describe(self) -> str:
        simd = "AVX2+FMA" if {"avx2", "fma"} <= self.flags else "no AVX2+FMA"
        return (f"{self.cpu}, {self.cores} cores usable, {self.mhz:.0f} MHz ({simd}); FP32 peak "
                f"{self.cores} × {self.mhz / 1000:.3f} GHz × {FLOP_PER_CYCLE} FLOP/cycle = "
                f"{self.peak_flops / 1e9:.1f} GFLOP/s; {platform.system()} {platform.release()}")


def this_machine(cpuinfo: Path = Path("/proc/cpuinfo")) -> Machine:
    """Read the CPU model, clock and flags of the first processor; cores are those this process may use."""
    fields: dict[str, str] = {}
    for line in cpuinfo.read_text().splitlines():
        if not line.strip():
            break  # the first processor's block is enough
        key, _, value = line.partition(":")
        fields[key.strip()] = value.strip()
    return Machine(cpu=fields.get("model name", platform.processor() or "unknown CPU"),
                   cores=len(os.sched_getaffinity(0)), mhz=float(fields.get("cpu MHz", "0")),
                   flags=frozenset(fields.get("flags", "").split()))
