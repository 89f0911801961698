"""benchmarking.timing: per-step statistics against NumPy."""

import numpy as np
import pytest
from benchmarking import timing


def test_summarize_matches_numpy():
    rng = np.random.default_rng(0)
    warmup = list(rng.uniform(1.0, 5.0, size=2))
    blocks = [list(rng.uniform(0.1, 1.0, size=4)) for _ in range(3)]  # 4 calls of 2 steps each
    stats = timing.summarize(warmup, blocks, steps=8, batch_size=64)
    per_step = np.asarray(blocks).sum(axis=1) / 8
    np.testing.assert_allclose(stats["blocks"], per_step, rtol=1e-12)
    np.testing.assert_allclose(stats["s_per_step"], np.median(per_step), rtol=1e-12)
    np.testing.assert_allclose(stats["pairs_per_s"], 64 / np.median(per_step), rtol=1e-12)
    assert stats["s_per_step_min"] == pytest.approx(per_step.min())
    assert stats["s_per_step_max"] == pytest.approx(per_step.max())
    assert stats["warmup_s"] == pytest.approx(sum(warmup))
    # An even number of blocks: the median is the mean of the middle two.
    stats = timing.summarize([], [[4.0], [1.0], [3.0], [2.0]], steps=1, batch_size=1)
    assert stats["s_per_step"] == 2.5


def test_summarize_rejects_bad_input():
    with pytest.raises(ValueError, match="non-empty timed block"):
        timing.summarize([1.0], [], steps=3, batch_size=8)
    with pytest.raises(ValueError, match="non-empty timed block"):
        timing.summarize([1.0], [[1.0], []], steps=3, batch_size=8)
    with pytest.raises(ValueError, match="positive"):
        timing.summarize([1.0], [[1.0]], steps=0, batch_size=8)


def test_load_range_and_machine_readings():
    assert timing.load_range([None, None]) == "-"
    assert timing.load_range([2.0, 2.0]) == "2.0"
    assert timing.load_range([3.5, 1.25]) == "1.2–3.5"
    assert timing.peak_rss_mib() > 10
    assert timing.current_rss_mib() is None or 0 < timing.current_rss_mib() <= timing.peak_rss_mib() + 1
    cpu = timing.cpu_description()
    assert set(cpu) == {"model", "simd_flags", "speed_flags"} and all(
        f.startswith(("avx", "fma", "amx")) for f in cpu["simd_flags"]
    )
    assert set(cpu["speed_flags"]) == set(timing.SPEED_FLAGS)


def test_cpu_description_reads_the_speed_flags(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(
        "processor\t: 0\nmodel name\t: Example CPU @ 2.0GHz\n"
        "flags\t\t: fpu sse2 avx avx2 fma avx512f avx512_bf16 amx_tile\n\n"
        "processor\t: 1\nmodel name\t: Example CPU @ 2.0GHz\nflags\t\t: fpu\n"
    )
    cpu = timing.cpu_description(str(cpuinfo))
    assert cpu["model"] == "Example CPU @ 2.0GHz"
    assert cpu["simd_flags"] == ["avx", "avx2", "fma", "avx512f", "avx512_bf16", "amx_tile"]
    assert cpu["speed_flags"] == {"avx2": True, "avx512f": True, "avx512_bf16": True, "amx_bf16": False}
    missing = timing.cpu_description(str(tmp_path / "none"))
    assert missing == {"model": None, "simd_flags": [], "speed_flags": dict.fromkeys(timing.SPEED_FLAGS)}
