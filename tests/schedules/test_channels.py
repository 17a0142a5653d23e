"""Channels: compact ids for the (sender, receiver) rank pairs messages use.

The dry runs keep one FIFO per channel, so their state must grow with the pairs
that occur (O(p*v) for a pipeline), never with p**2 (issue 3: cost linear in p*m).
"""

import numpy as np
import pytest

from ringpipe.schedules import (
    add_communication,
    generate,
    interleaved_placement,
    kernels,
    one_chunk_placement,
    v_shape_placement,
    validate,
)
from ringpipe.schedules.encoded import encode, message_channels


def rank_pairs(placement):
    """(sender, receiver) of the forward and the backward message of each stage boundary."""
    pairs = []
    for s in range(len(placement) - 1):
        pairs += [(placement[s], placement[s + 1]), (placement[s + 1], placement[s])]
    return pairs


@pytest.mark.parametrize(
    "placement",
    [
        one_chunk_placement(1),
        one_chunk_placement(5),
        interleaved_placement(1, 3),
        interleaved_placement(3, 4),
        v_shape_placement(1),
        v_shape_placement(4),
        (2, 0, 1, 1, 0, 2),
    ],
)
def test_channel_ids_number_exactly_the_rank_pairs_in_use(placement):
    channel, count = message_channels(np.array(placement))
    pairs = rank_pairs(placement)
    assert channel.shape == (len(pairs),)
    remote = sorted({pair for pair in pairs if pair[0] != pair[1]})
    assert count == len(remote)
    for c, pair in zip(channel.tolist(), pairs, strict=True):
        # same-rank neighbours exchange no message; the others get the pair's rank
        # in lexicographic order, so two messages share an id iff they share both ranks
        assert c == (-1 if pair[0] == pair[1] else remote.index(pair))


def test_dry_run_state_is_linear_in_ranks_not_quadratic():
    p = 20_000
    lowered = add_communication(generate("1f1b", p, 1))
    enc = encode(lowered)
    channel, count = enc.channels
    assert count == 2 * (p - 1)  # p*p would be 4e8 slots, 3.2 GB per array
    result = kernels.dry_run_kernel(
        enc.stage, enc.kind, enc.microbatch, enc.row_start, enc.placement,
        enc.num_microbatches, True, enc.pair, channel, count,
    )  # fmt: skip
    status, _, _, order, _, _, chan_head, _ = result
    assert status == kernels.OK and order.size == enc.stage.size
    assert chan_head.shape == (count,) and (chan_head == -1).all()
    assert validate(lowered).order.size == enc.stage.size  # batched run, same channels
