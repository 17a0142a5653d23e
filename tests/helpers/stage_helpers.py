"""Helpers shared by the model tests: a counting all-reduce and random model data."""

import numpy as np


class Counter:
    """Plain-NumPy sum all-reduce that counts its calls."""

    def __init__(self):
        self.calls = 0

    def __call__(self, bufs):
        self.calls += 1
        total = bufs[0].copy()
        for b in bufs[1:]:
            total += b
        for b in bufs:
            b[...] = total


def make_data(cfg, batch, seed=0):
    rng = np.random.default_rng(seed)
    if cfg.vocab:
        return (rng.integers(0, cfg.vocab, (batch, cfg.seq)),
                rng.integers(0, cfg.vocab, (batch, cfg.seq)))
    shape = (batch, cfg.seq, cfg.hidden)
    return rng.standard_normal(shape), rng.standard_normal(shape)
