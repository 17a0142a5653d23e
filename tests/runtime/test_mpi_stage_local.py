"""Local-rank mode of the stage functions (what each MPI process runs), without MPI.

Two threads play the two processes of a TP group: each calls the stage functions with
lists of length 1 (``spec.local_view()``), and their ``all_reduce`` callables meet at a
barrier and reduce both buffers with the in-process ring executor. Every result must be
bitwise what the all-ranks mode computes for that tp rank.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest

import ringpipe
from ringpipe.model import (
    ModelConfig,
    StageSpec,
    init_params,
    shard_params,
    stage_backward,
    stage_backward_input,
    stage_backward_weight,
    stage_forward,
)
from ringpipe.verify.training import random_batch

pytestmark = pytest.mark.mpi


class _Meeting:
    """all_reduce callables for T threads that sum their one-element lists together."""

    def __init__(self, tp: int) -> None:
        self.slots: list[np.ndarray | None] = [None] * tp
        self.barrier = threading.Barrier(tp)

    def for_rank(self, t: int):
        def all_reduce(buffers: list[np.ndarray]) -> None:
            (self.slots[t],) = buffers
            if self.barrier.wait() == 0:
                ringpipe.all_reduce(self.slots, "ring", backend="numpy")
            self.barrier.wait()
        return all_reduce


def _whole(spec, shards, batch, targets, all_reduce, split):
    loss, cache = stage_forward(spec, shards, batch, all_reduce, targets, 0.5)
    if split:
        _, wcache = stage_backward_input(spec, cache, None, all_reduce)
        grads = stage_backward_weight(spec, wcache)
    else:
        _, grads = stage_backward(spec, cache, None, all_reduce)
    return loss, cache.output, grads


@pytest.mark.parametrize("split", [False, True])
@pytest.mark.parametrize("block", ["transformer", "mlp"])
def test_local_mode_is_bitwise_the_all_ranks_mode(block, split):
    cfg = ModelConfig(layers=2, hidden=16, heads=4, seq=4, vocab=9, block=block)
    params = init_params(cfg, 0)
    shards = shard_params(cfg, params, 2)
    inputs, targets = random_batch(cfg, 3, 1)
    spec = StageSpec(cfg, 0, 2, tp=2)
    counted = []

    def all_ranks(bufs):
        counted.append(len(bufs))
        ringpipe.all_reduce(bufs, "ring", backend="numpy")

    loss, output, grads = _whole(spec, shards, [inputs, inputs], targets, all_ranks, split)
    meeting, results = _Meeting(2), [None, None]

    def process(t: int) -> None:
        results[t] = _whole(spec.local_view(), [shards[t]], [inputs], targets,
                            meeting.for_rank(t), split)

    threads = [threading.Thread(target=process, args=(t,)) for t in range(2)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=60)
    assert counted and all(n == 2 for n in counted)
    for t, (local_loss, local_out, local_grads) in enumerate(results):
        assert local_loss == loss and local_out.tobytes() == output.tobytes()
        assert list(local_grads[0]) == list(grads[t])
        assert all(local_grads[0][n].tobytes() == grads[t][n].tobytes() for n in grads[t])


def test_local_spec_checks_list_lengths():
    cfg = ModelConfig(layers=1, hidden=8, heads=2, seq=4, vocab=5)
    spec = StageSpec(cfg, 0, 1, tp=2).local_view()
    assert spec.local and spec.tp == 2 and spec.ranks_here == 1
    shards = shard_params(cfg, init_params(cfg, 0), 2)
    inputs, targets = random_batch(cfg, 1, 0)
    with pytest.raises(ValueError, match="list of length 1 in local-rank mode"):
        stage_forward(spec, shards, [inputs, inputs], lambda b: None, targets)
    with pytest.raises(TypeError, match="local must be a bool"):
        StageSpec(cfg, 0, 1, tp=2, local=1)  # type: ignore[arg-type]
    assert StageSpec(cfg, 0, 1, 2) != spec and spec.local_view() == spec
