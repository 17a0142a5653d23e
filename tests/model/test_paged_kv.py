"""The paged KV cache (block pool, block tables) and the ragged stage step."""

from __future__ import annotations

import numpy as np
import pytest

from ringpipe.model import ModelConfig, init_params
from ringpipe.model.generate import generate
from ringpipe.model.inference_stage import InferenceSpec, inference_shards, ragged_stage_step
from ringpipe.model.kv_cache import BlockPool, KVCache, PagedKVCache


def test_block_pool_free_list_reuses_the_last_freed_blocks_first():
    pool = BlockPool(6, 4)
    assert pool.blocks_for(0) == 0 and pool.blocks_for(4) == 1 and pool.blocks_for(5) == 2
    a = pool.allocate(2)
    b = pool.allocate(3)
    assert sorted(a + b) == [0, 1, 2, 3, 4] and pool.num_free == 1
    pool.free(a)
    assert pool.num_free == 3 and sorted(pool.allocate(2)) == sorted(a)
    with pytest.raises(ValueError, match="3 blocks asked, 1 of 6 free"):
        pool.allocate(3)
    assert pool.num_free == 1  # nothing taken by the refused call
    with pytest.raises(ValueError, match="not an allocated block"):
        pool.free([5])  # block 5 is free already


def test_paged_append_matches_a_contiguous_cache_through_scattered_blocks():
    rng = np.random.default_rng(0)
    paged = PagedKVCache.allocate(1, 7, 2, 3, 2, np.float64)
    flat = KVCache.allocate(1, 1, 2, 3, 9, np.float64)
    table = np.array([5, 0, 3, 6, 1])  # anywhere in the pool, in position order
    start = 0
    for n in (3, 1, 4, 1):
        k, v = rng.standard_normal((2, 1, 2, n, 3))
        got = paged.append(0, table, start, k, v)
        want = flat.append(0, k, v)
        assert all(np.array_equal(g, w) for g, w in zip(got, want, strict=True))
        start += n
    assert np.array_equal(paged.keys[0][5, :, 0], flat.keys[0][0, :, 0])  # position 0
    assert np.array_equal(paged.keys[0][6, :, 1], flat.keys[0][0, :, 7])  # position 7
    two = np.zeros((1, 2, 2, 3))
    with pytest.raises(ValueError, match="need 6 blocks, the table has 5"):
        paged.append(0, table, 9, two, two)


@pytest.mark.parametrize("tp", [1, 2, 4])
def test_ragged_step_equals_each_request_alone(tp):
    """Requests flattened into one batch (a prefill chunk and decodes) give each request's
    single-request reference tokens, whatever shares the batch."""
    cfg = ModelConfig(layers=3, hidden=16, heads=4, kv_heads=2, vocab=30)
    params = init_params(cfg, 4)
    spec = InferenceSpec(cfg, 0, 3, tp)  # the whole model: ids in, logits out
    shards = inference_shards(cfg, params, tp)
    caches = spec.allocate_paged(12, 2)
    rng = np.random.default_rng(1)
    prompts = [rng.integers(0, 30, n) for n in (5, 2, 3)]
    tables = [np.array([3, 9, 0, 4]), np.array([11, 1]), np.array([7, 2, 5, 8])]

    def summed(xs):  # the TP all-reduce, in place
        total = sum(xs)
        for i in range(len(xs)):
            xs[i] = total.copy()

    # iteration 1: request 0's first chunk (3 of 5), requests 1 and 2 whole
    # iteration 2: request 0's last chunk, decodes of 1 and 2; iteration 3: three decodes
    plan = [[(0, 0, 3), (1, 0, 2), (2, 0, 3)], [(1, 2, 1), (2, 3, 1), (0, 3, 2)],
            [(0, 5, 1), (1, 3, 1), (2, 4, 1)]]
    out_tokens: dict[int, list[int]] = {0: [], 1: [], 2: []}
    for it in plan:
        ids = []
        for rq, start, n in it:
            if start >= len(prompts[rq]):
                ids.append(out_tokens[rq][-1])
            else:
                ids.extend(prompts[rq][start:start + n])
        xs = [np.asarray(ids, dtype=np.int64)] * tp
        logits = ragged_stage_step(spec, shards, xs, caches,
                                   [(tables[rq], s, n) for rq, s, n in it], summed)
        for j, (rq, start, n) in enumerate(it):
            if start + n >= len(prompts[rq]):
                out_tokens[rq].append(int(np.argmax(logits[0][j])))
    for rq, prompt in enumerate(prompts):
        ref = generate(cfg, params, prompt[None], len(out_tokens[rq]))
        assert ref.tokens[0].tolist() == out_tokens[rq]
