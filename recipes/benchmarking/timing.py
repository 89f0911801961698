"""Timing statistics and machine readings for the benchmark (pure Python, no TensorFlow)."""

import os
import resource
import statistics
import sys


def summarize(warmup, blocks, *, steps, batch_size):
    """Per-step statistics from timed calls.

    Args:
        warmup: seconds of each warm-up call (tracing, compilation, autotuning).
        blocks: one list per timed block: the seconds of its calls, which together ran
            `steps` training steps (or fetched `steps` batches).
        steps: steps per block.
        batch_size: image pairs per step.

    Returns:
        dict: `s_per_step` (median over blocks of the block's mean), `s_per_step_min` /
        `s_per_step_max` (fastest and slowest block), `pairs_per_s` (from the median),
        `blocks` (each block's s/step), `warmup_s` (the warm-up calls' total).

    Example:
    >>> summarize([3.0], [[0.5, 0.5], [0.25, 0.25], [1.0, 1.0]], steps=2, batch_size=8)["s_per_step"]
    0.5
    """
    if not blocks or any(not block for block in blocks):
        raise ValueError(f"need at least one non-empty timed block, got {blocks!r}")
    if steps < 1 or batch_size < 1:
        raise ValueError(f"steps and batch_size must be positive, got {steps} and {batch_size}")
    per_step = [sum(block) / steps for block in blocks]
    median = statistics.median(per_step)
    return {
        "s_per_step": median,
        "s_per_step_min": min(per_step),
        "s_per_step_max": max(per_step),
        "pairs_per_s": batch_size / median,
        "blocks": per_step,
        "warmup_s": sum(warmup),
    }


def peak_rss_mib():
    """Peak resident set size of this process so far, in MiB (Linux: ru_maxrss is KiB)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024.0 * 1024.0) if sys.platform == "darwin" else peak / 1024.0


def current_rss_mib():
    """Resident set size of this process now, in MiB, or `None` without `/proc`."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1024.0**2
    except (OSError, ValueError):
        return None


def load1():
    """The one-minute load average, or `None` where the OS has none."""
    return round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None


def load_range(loads):
    """`"min–max"` of the recorded load averages (`"-"` when none was recorded).

    Example:
    >>> load_range([1.5, None, 2.25])
    '1.5–2.2'
    """
    loads = [x for x in loads if x is not None]
    if not loads:
        return "-"
    return f"{min(loads):.1f}–{max(loads):.1f}" if max(loads) != min(loads) else f"{loads[0]:.1f}"


# CPU features that decide how fast a float32 / bfloat16 training step can be.
SPEED_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16")


def cpu_description(cpuinfo="/proc/cpuinfo"):
    """The CPU model, its SIMD flags (`avx*`, `fma`, `amx*`) and which `SPEED_FLAGS` it has.

    Returns:
        dict: `model` (or `None`), `simd_flags` (list), `speed_flags` (`{flag: bool}`, every
        value `None` where `cpuinfo` cannot be read, e.g. not on Linux).
    """
    model, flags = None, None
    try:
        with open(cpuinfo) as f:
            for line in f:
                key, _, value = line.partition(":")
                key = key.strip()
                if key == "model name" and model is None:
                    model = value.strip()
                elif key == "flags" and flags is None:
                    flags = value.split()
    except OSError:  # no /proc/cpuinfo (not Linux): the CPU stays unnamed
        return {"model": None, "simd_flags": [], "speed_flags": dict.fromkeys(SPEED_FLAGS)}
    flags = flags or []
    return {
        "model": model,
        "simd_flags": [flag for flag in flags if flag.startswith(("avx", "fma", "amx"))],
        "speed_flags": {flag: flag in flags for flag in SPEED_FLAGS},
    }
