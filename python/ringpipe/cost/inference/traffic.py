"""Where the simulator's requests come from: a Poisson rate, a fixed concurrency, a trace.

* :func:`poisson`: an open loop at ``rate`` requests per second, exponential gaps
  (vLLM's ``benchmark_serving --request-rate``); the gaps are unit exponentials scaled by
  1/rate, so two rates with one seed see the same pattern stretched (common random numbers
  make a rate sweep monotone in its noise);
* :func:`clients`: a closed loop of C clients (AIPerf's and genai-perf's
  ``--concurrency``), each sending its next request when the last one ends;
* :func:`read_trace`: a CSV of ``arrival_s,input_tokens,output_tokens`` (one request a
  row, a header line, ``#`` comment lines allowed), served as an open loop.

Every request has ``isl`` prompt and ``osl`` output tokens unless the trace says otherwise
(the fixed lengths of a synthetic benchmark).
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np

from ringpipe.files import display, read_text
from ringpipe.runtime.batching.policy import Request
from ringpipe.validation import check_int, check_real

__all__ = ["TRACE_COLUMNS", "clients", "poisson", "read_trace"]

#: The columns of a trace file, in order.
TRACE_COLUMNS = ("arrival_s", "input_tokens", "output_tokens")


def poisson(rate: float, requests: int, isl: int, osl: int, seed: int = 0) -> list[Request]:
    """``requests`` requests arriving as a Poisson process of ``rate`` per second, the
    first at its first gap."""
    check_real("poisson: rate", rate, positive=True)
    check_int("poisson: requests", requests)
    gaps = np.random.default_rng(seed).exponential(1.0, requests) / rate
    times = np.cumsum(gaps)
    return [Request(i, float(times[i]), isl, osl) for i in range(requests)]


def clients(concurrency: int, requests: int, isl: int, osl: int) -> list[list[Request]]:
    """``requests`` requests shared round robin by ``concurrency`` clients (request i is
    client i mod C's); arrival times are set by the closed loop."""
    check_int("clients: concurrency", concurrency)
    check_int("clients: requests", requests, concurrency)
    return [[Request(i, 0.0, isl, osl) for i in range(c, requests, concurrency)]
            for c in range(concurrency)]


#: Largest trace read (about 30 bytes a request: half a million requests).
TRACE_MAX_BYTES = 16 << 20


def read_trace(path: str | Path) -> list[Request]:
    """The requests of a trace file (module docstring), read through the one safe reader
    (:func:`ringpipe.files.read_text`: a FIFO, a device, a directory or a file over
    :data:`TRACE_MAX_BYTES` refused without blocking); ValueError naming the file, line
    and column for anything else."""
    text = read_text(path, "trace", TRACE_MAX_BYTES, ",".join(TRACE_COLUMNS) + " rows")
    path = display(os.fspath(path))  # one printable line in every message below
    rows = [(n, line) for n, line in enumerate(text.splitlines(), 1)
            if line.strip() and not line.lstrip().startswith("#")]
    if not rows:
        raise ValueError(f"{path}: empty trace: expected a header {','.join(TRACE_COLUMNS)}")
    header = [c.strip() for c in next(csv.reader([rows[0][1]]))]
    if tuple(header) != TRACE_COLUMNS:
        raise ValueError(f"{path}:{rows[0][0]}: header must be {','.join(TRACE_COLUMNS)}, "
                         f"got {','.join(header)}")
    out = []
    for n, line in rows[1:]:
        cells = [c.strip() for c in next(csv.reader([line]))]
        if len(cells) != len(TRACE_COLUMNS):
            raise ValueError(f"{path}:{n}: expected {len(TRACE_COLUMNS)} columns, got "
                             f"{len(cells)}")
        values: list[float] = []
        for column, cell, kind in zip(TRACE_COLUMNS, cells, (float, int, int), strict=True):
            try:
                values.append(kind(cell))
            except ValueError:
                what = "a number" if kind is float else "an integer"
                raise ValueError(f"{path}:{n}: {column} must be {what}, got {cell!r}") from None
        try:
            out.append(Request(len(out), values[0], int(values[1]), int(values[2])))
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{path}:{n}: {exc}") from None
    if not out:
        raise ValueError(f"{path}: the trace has a header but no requests")
    return out
