"""The MPI rows of ``ringpipe bench``: ringpipe's MPI ring and tree against
``MPI_Allreduce``, from one ``python -m ringpipe.mpi allreduce --json --floor`` job per
rank count, as medians of paired repetition ratios (:func:`paired_ratios`).
"""

from __future__ import annotations

import statistics

__all__ = ["mpi_available", "mpi_ratios", "paired_ratios"]


def mpi_available() -> bool:
    """True when mpi4py imports and an ``mpiexec`` is found (the mpi extra), where the
    launcher looks: next to the running Python, then on PATH."""
    import importlib.util

    from ringpipe.mpi.launch import find_mpiexec

    if importlib.util.find_spec("mpi4py") is None:
        return False
    try:
        find_mpiexec()
    except FileNotFoundError:
        return False
    return True


def mpi_ratios(nprocs: int, small: int, large: int, iters: int, reps: int,
               timeout: float = 300) -> dict[tuple[int, str], float]:
    """(size, algorithm) -> its time / ``MPI_Allreduce``'s, for ring and tree (one-shot
    and persistent) at sizes ``small`` and ``large`` (a power-of-two multiple of it),
    from one ``python -m ringpipe.mpi allreduce --json --floor`` job on ``nprocs``
    ranks (the algorithms take turns in every repetition; :mod:`ringpipe.measure.mpi_allreduce`),
    as medians of paired ratios (:func:`paired_ratios`). The exchange floors come as
    algorithms ``"ring floor"`` and ``"tree floor"``."""
    import json

    from ringpipe.mpi.launch import launch

    job = launch(nprocs, ["-m", "ringpipe.mpi", "allreduce", "--json", "--floor",
                          "--min-bytes", str(small), "--max-bytes", str(large), "--factor",
                          str(large // small), "--algorithms",
                          "ring,tree,mpi,ring+persistent,tree+persistent", "--iters",
                          str(iters), "--reps", str(reps)], timeout=timeout, capture=True)
    if job.returncode != 0:
        raise RuntimeError(f"MPI job on {nprocs} ranks failed: {job.stderr.strip()[-500:]}")
    report = json.loads(job.stdout)
    rows = report["rows"]
    if any(r["wrong"] for r in rows):
        raise RuntimeError(f"MPI all-reduce on {nprocs} ranks gave wrong results")
    return paired_ratios({(x["size_bytes"], x["algorithm"]): x["times_us"]
                          for x in report["samples"]})


def paired_ratios(samples: dict[tuple[int, str], list[float]],
                  baseline: str = "mpi") -> dict[tuple[int, str], float]:
    """(size, algorithm) -> the median over repetitions k of time[k] / baseline time[k]
    at that size. Repetition k of every case ran back to back, so each ratio compares
    like with like; the median discards the repetitions a neighbour disturbed."""
    ratios = {}
    for (size, alg), times in samples.items():
        if alg == baseline:
            continue
        base = samples[size, baseline]
        ratios[size, alg] = statistics.median(t / b for t, b in zip(times, base, strict=True))
    return ratios
