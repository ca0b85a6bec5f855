"""Side-by-side timing harness shared by every benchmark in this folder.

Shared 2-core machines drift (DESIGN.md, "Benchmarking on these machines"): absolute
times move by up to ±40% between runs. So implementations are run interleaved after a
warm-up (ours, ref1, ref2, ours, ref1, ...), each sample is the mean of ``inner`` calls
(so that timer overhead does not dominate sub-millisecond calls), the speedup is taken
pair by pair (reference sample / our sample of the same turn) and its median reported,
and the whole comparison is repeated ``rounds`` times. The reported speedup is the
median over rounds; every round's value is kept in the JSON so that a reader can judge
the spread.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = [
    "Comparison",
    "Reference",
    "compare",
    "environment",
    "render_table",
    "to_json",
]


@dataclass
class Reference:
    """One reference implementation measured against ours.

    ``speedup`` is reference time / our time (above 1: ours is faster). ``goal_speedup``
    is the smallest speedup the issue asks for; a goal of 0.25 reads "ours takes at most
    4× the reference", used for floors such as a plain memory copy.
    """

    name: str
    median_ms: float
    speedup: float
    speedup_rounds: list[float]
    goal_speedup: float | None = None

    @property
    def met(self) -> bool | None:
        """Whether the goal was reached (None when there is no goal)."""
        if self.goal_speedup is None:
            return None
        return self.speedup >= self.goal_speedup


@dataclass
class Comparison:
    """Our implementation against its references on one case."""

    case: str
    ours_name: str
    ours_median_ms: float
    references: list[Reference] = field(default_factory=list)
    notes: str = ""


def _sample(fn: Callable[[], object], inner: int) -> float:
    start = time.perf_counter_ns()
    for _ in range(inner):
        fn()
    return (time.perf_counter_ns() - start) / inner / 1e6


def _calibrate_inner(fn: Callable[[], object], target_ms: float) -> int:
    """Calls per sample so that one sample lasts about ``target_ms``."""
    one = _sample(fn, 1)
    one = min(one, _sample(fn, 1))
    return max(1, min(10_000, int(target_ms / max(one, 1e-6))))


def compare(
    case: str,
    ours: tuple[str, Callable[[], object]],
    references: Sequence[tuple[str, Callable[[], object], float | None]],
    *,
    samples: int = 30,
    rounds: int = 3,
    warmup: int = 5,
    sample_ms: float = 5.0,
    notes: str = "",
) -> Comparison:
    """Time ``ours`` against each reference, interleaved, and return the comparison.

    ``references`` holds ``(name, fn, goal_speedup)`` triples. Every callable must do the
    full work of one call (write every output element) and return its result, so that
    nothing is optimized away or deferred.
    """
    ours_name, ours_fn = ours
    fns = [ours_fn] + [fn for _, fn, _ in references]
    for fn in fns:
        for _ in range(warmup):
            fn()
    inner = min(_calibrate_inner(fn, sample_ms) for fn in fns)
    ours_all: list[float] = []
    ref_all: list[list[float]] = [[] for _ in references]
    ratio_rounds: list[list[float]] = [[] for _ in references]
    for _ in range(rounds):
        pair_ratios: list[list[float]] = [[] for _ in references]
        for _ in range(samples):
            ours_ms = _sample(ours_fn, inner)
            ours_all.append(ours_ms)
            for i, (_, fn, _) in enumerate(references):
                ref_ms = _sample(fn, inner)
                ref_all[i].append(ref_ms)
                pair_ratios[i].append(ref_ms / ours_ms)
        for i in range(len(references)):
            ratio_rounds[i].append(statistics.median(pair_ratios[i]))
    refs = [
        Reference(
            name=name,
            median_ms=statistics.median(ref_all[i]),
            speedup=statistics.median(ratio_rounds[i]),
            speedup_rounds=[round(r, 3) for r in ratio_rounds[i]],
            goal_speedup=goal,
        )
        for i, (name, _, goal) in enumerate(references)
    ]
    return Comparison(
        case=case,
        ours_name=ours_name,
        ours_median_ms=statistics.median(ours_all),
        references=refs,
        notes=notes,
    )


def environment() -> dict[str, Any]:
    """What the numbers were measured on, including the settings that change them."""
    import numpy as np

    env: dict[str, Any] = {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "numpy": np.__version__,
        "OPENBLAS_CORETYPE": os.environ.get("OPENBLAS_CORETYPE"),
    }
    try:
        import cv2

        env["opencv"] = cv2.__version__
        env["opencv_threads"] = cv2.getNumThreads()
    except ImportError:  # pragma: no cover - opencv is a core dependency
        pass
    return env


def _goal_text(ref: Reference) -> str:
    if ref.goal_speedup is None:
        return "-"
    if ref.goal_speedup >= 1:
        return f">= {ref.goal_speedup:g}x faster"
    return f"<= {1 / ref.goal_speedup:g}x its time"


def render_table(title: str, comparisons: Sequence[Comparison]) -> Any:
    """A Rich table: one row per (case, reference), speedup and goal side by side."""
    from rich.table import Table

    table = Table(title=title)
    for column in (
        "case",
        "ours (ms)",
        "reference",
        "ref (ms)",
        "speedup",
        "rounds",
        "goal",
        "met",
    ):
        table.add_column(column)
    for comp in comparisons:
        for ref in comp.references:
            met = ref.met
            table.add_row(
                comp.case,
                f"{comp.ours_median_ms:.4f}",
                ref.name,
                f"{ref.median_ms:.4f}",
                f"{ref.speedup:.2f}x",
                " ".join(f"{r:.2f}" for r in ref.speedup_rounds),
                _goal_text(ref),
                "-" if met is None else ("yes" if met else "NO"),
            )
    return table


def results_json(comparisons: Sequence[Comparison]) -> list[dict[str, Any]]:
    """Each comparison as a plain dict, every reference with whether its goal was met."""
    results = []
    for comp in comparisons:
        item = asdict(comp)
        for ref_dict, ref in zip(item["references"], comp.references, strict=True):
            ref_dict["met"] = ref.met
        results.append(item)
    return results


def to_json(benchmark: str, comparisons: Sequence[Comparison]) -> str:
    """One JSON document: environment, and per case our time and each reference's ratio."""
    results = results_json(comparisons)
    return json.dumps(
        {"benchmark": benchmark, "environment": environment(), "results": results}, indent=2
    )
