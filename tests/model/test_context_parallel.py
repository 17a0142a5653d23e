"""Ring attention against one device's causal attention: forward and backward, any cp,
with grouped-query attention; the load-balanced split and the sequence checks."""

import numpy as np
import pytest

from ringpipe.model import functional as F
from ringpipe.model.blocks.comm import LayerComm
from ringpipe.model.blocks.ring_attention import (
    cp_positions,
    ring_attention_backward,
    ring_attention_forward,
)


class RingOfEntries(LayerComm):
    """Entry i is CP rank i: the step table's transfers move whole arrays."""

    def __init__(self, cp):
        super().__init__(lambda bufs: None, cp, cp=cp, cp_ranks=tuple(range(cp)))

    def cp_exchange(self, table, step, blocks):
        out = list(blocks)
        for t in table.steps()[step]:
            out[t.dst] = blocks[t.src].copy()
        return out


def test_positions_pair_an_early_chunk_with_a_late_one():
    assert cp_positions(16, 2, 0).tolist() == [0, 1, 2, 3, 12, 13, 14, 15]
    assert cp_positions(16, 2, 1).tolist() == [4, 5, 6, 7, 8, 9, 10, 11]
    assert sorted(np.concatenate([cp_positions(24, 3, c) for c in range(3)])) == list(range(24))
    with pytest.raises(ValueError, match="seq=10 is not divisible by 2 × cp = 4"):
        cp_positions(10, 2, 0)


@pytest.mark.parametrize("cp", [1, 2, 3, 4])
@pytest.mark.parametrize("kv_heads", [4, 2])
def test_ring_attention_matches_one_device(cp, kv_heads):
    rng = np.random.default_rng(cp * 10 + kv_heads)
    batch, seq, heads, d = 2, 24, 4, 3
    qkv = rng.standard_normal((batch * seq, (heads + 2 * kv_heads) * d))
    dctx = rng.standard_normal((batch * seq, heads * d))
    ctx, cache = F.attention_forward(qkv, batch, seq, heads, kv_heads)
    dqkv = F.attention_backward(dctx, cache, kv_heads)
    comm = RingOfEntries(cp)
    width = qkv.shape[1]

    def local(x, c):
        pos = cp_positions(seq, cp, c)
        return np.ascontiguousarray(x.reshape(batch, seq, -1)[:, pos]).reshape(
            batch * len(pos), -1)

    outs, caches = ring_attention_forward(comm, [local(qkv, c) for c in range(cp)], batch,
                                          seq, heads, kv_heads)
    grads = ring_attention_backward(comm, [local(dctx, c) for c in range(cp)], caches, seq)
    for c in range(cp):
        assert outs[c].shape == (batch * seq // cp, heads * d)
        np.testing.assert_allclose(outs[c], local(ctx, c), rtol=0, atol=1e-13)
        assert grads[c].shape == (batch * seq // cp, width)
        np.testing.assert_allclose(grads[c], local(dqkv, c), rtol=0, atol=1e-13)
