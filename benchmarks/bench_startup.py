"""Start-up of the command line: ``ringpipe --version`` and a small ``ringpipe schedule``.

Target (issue 25): each under 0.25 s of wall time on the 2-core development machine,
with no Numba loaded (``tests/cli/test_startup.py`` checks the imports). Baseline
measured in the same run: the bare interpreter (``python -c pass``), so ``extra_info``
gives each command's time, the interpreter's and their ratio. Each is the best of
several runs, since the machine's cores are shared.

Run: ``python -m pytest benchmarks/bench_startup.py --benchmark-only`` or
``python benchmarks/bench_startup.py`` for a summary.
"""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

TARGET_SECONDS = 0.25
COMMANDS = {
    "version": ["-m", "ringpipe", "--version"],
    "schedule": ["-m", "ringpipe", "schedule", "1f1b", "--stages", "2", "--microbatches", "2"],
    "interpreter": ["-c", "pass"],
}


def wall(argv: list[str]) -> float:
    """Wall seconds of one ``python argv`` run (it must succeed)."""
    start = time.perf_counter()
    subprocess.run([sys.executable, *argv], check=True, capture_output=True)
    return time.perf_counter() - start


def measure(rounds: int = 7) -> dict[str, float]:
    """Best of ``rounds`` runs of each command, taking turns; and the ratios."""
    best = {name: float("inf") for name in COMMANDS}
    for _ in range(rounds):
        for name, argv in COMMANDS.items():
            best[name] = min(best[name], wall(argv))
    return {**best, "target_seconds": TARGET_SECONDS,
            **{f"{n}_over_interpreter": best[n] / best["interpreter"]
               for n in ("version", "schedule")}}


@pytest.mark.parametrize("name", ["version", "schedule"])
def test_startup(benchmark, name):
    wall(COMMANDS[name])  # warm the page cache and Python's bytecode cache
    benchmark.pedantic(lambda: wall(COMMANDS[name]), rounds=5, iterations=1)
    interpreter = min(wall(COMMANDS["interpreter"]) for _ in range(5))
    fastest = benchmark.stats.stats.min
    benchmark.extra_info.update(seconds=fastest, target_seconds=TARGET_SECONDS,
                                interpreter_seconds=interpreter,
                                ratio_to_interpreter=fastest / interpreter)


if __name__ == "__main__":
    print(measure())
