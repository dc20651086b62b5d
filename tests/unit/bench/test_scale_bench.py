"""The scale suite's arithmetic: the fitted line, the growth exponent and the rows it reports."""

from __future__ import annotations

import math
import os
import subprocess
import sys

import pytest

from bench.scale_bench import StepCost, TreePeak, fit_line, growth_exponent, steps_from_env, summarize


def _cost(step: str, customers: int, cpu: float, rss: int) -> StepCost:
    return StepCost(step, customers, wall_s=cpu, cpu_s=cpu, rss_self=rss, rss_tree=rss)


def _value(rows: list[dict], metric: str) -> float:
    return next(r["value"] for r in rows if r["metric"] == metric)


def test_a_linear_cost_is_fitted_exactly_and_projected_per_million():
    # given a step costing 2 s + 1 ms per customer and 100 MB + 10 KB per customer, at three sizes
    costs = [_cost("embed", n, 2 + n * 1e-3, int(100e6 + n * 10e3)) for n in (1_000, 5_000, 20_000)]

    # when
    rows = summarize(costs, {1_000: 7_000_000}, nodes=10)

    # then
    assert _value(rows, "embed: CPU per extra customer") == pytest.approx(1.0)
    assert _value(rows, "embed: CPU per million customers") == pytest.approx(1_000)
    assert _value(rows, "embed: CPU growth exponent (1 = linear)") < 1
    assert _value(rows, "embed: peak RSS per extra customer") == pytest.approx(10.0)
    assert _value(rows, "embed: wall projected at 1M") == pytest.approx(1_002)
    assert _value(rows, "embed: wall projected at 10M on 10 nodes") == pytest.approx(1_002)
    assert _value(rows, "embed: peak RSS projected at 1M") == pytest.approx((100e6 + 1e10) / 2**30)
    assert _value(rows, "offline text source @ 1,000: bytes per customer") == pytest.approx(7_000)


def test_growth_exponent_is_one_for_a_proportional_cost_and_two_for_a_quadratic_one():
    x = [1e3, 1e4, 1e5]
    assert growth_exponent(x, [v * 3 for v in x]) == pytest.approx(1.0)
    assert growth_exponent(x, [v * v for v in x]) == pytest.approx(2.0)
    assert math.isnan(growth_exponent([1e3], [1.0]))
    assert fit_line([10.0], [5.0]) == (0.0, 0.5)


def test_an_unknown_step_names_the_setting(monkeypatch):
    monkeypatch.setenv("PERSONA_BENCH_SCALE_STEPS", "embed,materialise")
    with pytest.raises(ValueError, match="PERSONA_BENCH_SCALE_STEPS: unknown step"):
        steps_from_env()


def test_the_tree_sampler_sees_a_child_of_the_child():
    # given a process whose child holds 200 MB for a moment
    script = ("import subprocess, sys; subprocess.run([sys.executable, '-c', "
              "'import time; b = bytearray(200 * 2**20); b[::4096] = b\"x\" * len(b[::4096]); time.sleep(1.5)'])")
    child = subprocess.Popen([sys.executable, "-c", script])

    # when its tree is sampled until it exits
    with TreePeak(child.pid) as tree:
        os.waitpid(child.pid, 0)

    # then the grandchild's peak is among the processes seen
    assert len(tree.peaks) >= 2
    assert max(tree.peaks.values()) > 200 * 2**20
