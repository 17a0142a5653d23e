"""Disaggregated serving: a prefill pool and a decode pool, the KV cache sent between them.

DistServe (Zhong et al., OSDI'24) and Splitwise (Patel et al., ISCA'24) run prompts and
token generation on separate GPUs, so that a long prefill never stalls running decodes and
each phase gets its own parallelism. :func:`simulate_disaggregated` models it with the one
scheduler on both pools (:mod:`ringpipe.runtime.batching`):

1. the prefill pool (``prefill`` layout, its DP replicas round robin) serves each request
   as a one-token request: its prompt, then its first token, which is the TTFT;
2. the prompt's KV cache, 2 · layers · kv_heads · d · bytes per position, goes to the
   decode pool: each of the prefill replica's tp · pp GPUs sends its shard at once over
   one link, intra-node when both pools fit in one node and the cluster's inter-node link
   otherwise (α + bytes / (tp · pp · β));
3. the decode pool (``decode`` layout) admits it as a prefilled request, holding its L + K
   - 1 positions, and decodes tokens 1 .. K - 1.

The first inter-token gap includes the transfer. Without feedback from the decode pool to
the prefill pool this needs an open loop (a rate or a trace). The KV pools are each
layout's own (:func:`~ringpipe.cost.inference.iteration.kv_blocks`).
"""

from __future__ import annotations

import dataclasses

from ringpipe.cost.inference.iteration import IterationPricer, kv_blocks
from ringpipe.cost.inference.model import InferenceModel
from ringpipe.cost.inference.serving import DEFAULT_KNOBS, Knobs, Load, ServingStats
from ringpipe.cost.inference.workload import WEIGHT_BYTES
from ringpipe.mesh import Mesh
from ringpipe.runtime.batching.engine import OpenLoop, round_robin, serve

__all__ = ["kv_transfer_s", "simulate_disaggregated"]


def kv_transfer_s(im: InferenceModel, prefill: Mesh, decode: Mesh, positions: int,
                  dtype: str = "bf16") -> float:
    """Seconds to send ``positions`` positions' KV cache from a prefill replica to a decode
    replica (module docstring, step 2)."""
    m, c = im.model, im.cluster
    nbytes = (2.0 * m.layers * m.kv_heads * (m.hidden // m.heads) * WEIGHT_BYTES[dtype]
              * positions)
    same_node = prefill.world + decode.world <= c.gpus_per_node
    link = c.intra if same_node else c.inter
    senders = prefill.tp * prefill.pp
    return link.latency + nbytes / senders / link.bandwidth


def simulate_disaggregated(im: InferenceModel, prefill: Mesh, decode: Mesh, load: Load,
                           knobs: Knobs = DEFAULT_KNOBS,
                           dtype: str = "bf16") -> ServingStats | None:
    """Serve ``load`` with prompts on ``prefill`` and tokens on ``decode`` (module
    docstring); None when either pool cannot hold one request. The stats' layout is the
    decode pool's."""
    if load.concurrency is not None:
        raise ValueError("simulate_disaggregated: a closed loop (concurrency) couples the "
                         "pools; give a rate or a trace")
    first = _pool(im, prefill, [dataclasses.replace(r, output_len=1)
                                for r in _requests(load)], knobs, dtype)
    if first is None:
        return None
    ttft = {r.request.id: r.token_s[0] for t in first for r in t.requests}
    arriving = [dataclasses.replace(r, arrival_s=ttft[r.id] + kv_transfer_s(
        im, prefill, decode, r.prompt_len, dtype), prefilled=True)
        for r in _requests(load) if r.output_len > 1]
    second = _pool(im, decode, arriving, knobs, dtype) if arriving else ()
    if second is None:
        return None
    later = {r.request.id: r.token_s for t in second for r in t.requests}
    requests = {r.id: r for r in _requests(load)}
    tokens = {i: (t0, *later.get(i, ())) for i, t0 in ttft.items()}
    itl = [(ts[-1] - ts[0]) / (len(ts) - 1) for ts in tokens.values() if len(ts) > 1]
    start = min(r.arrival_s for r in requests.values())
    end = max(ts[-1] for ts in tokens.values())
    return ServingStats(decode, load, kv_blocks(im, decode, dtype, knobs.block_size),
                        tuple(ttft[i] - requests[i].arrival_s for i in sorted(ttft)),
                        tuple(itl),
                        tuple(tokens[i][-1] - requests[i].arrival_s for i in sorted(ttft)),
                        sum(r.output_len for r in requests.values()), end - start,
                        (*first, *second))


def _requests(load: Load) -> list:
    return [r for source in load.sources(1) for r in source.take(float("inf"))]


def _pool(im: InferenceModel, layout: Mesh, requests: list, knobs: Knobs,
          dtype: str) -> tuple | None:
    blocks = kv_blocks(im, layout, dtype, knobs.block_size)
    if blocks * knobs.block_size < max(r.positions for r in requests):
        return None
    policy, pricer = knobs.policy(blocks), IterationPricer(im, layout, dtype)
    return tuple(serve(policy, OpenLoop(rs), pricer, layout.pp)
                 for rs in round_robin(requests, layout.dp))
