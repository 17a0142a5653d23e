"""``verify --inference --requests N``: the command-line description of a served run.

With ``--requests N`` the inference check serves N requests with continuous batching
(:class:`~ringpipe.plan.serving.ServingPlan`) instead of one static batch: arrivals at a
Poisson ``--rate`` per second, each request's prompt length drawn uniformly from 1 ..
``--prompt-len`` and its output length from 1 .. ``--new-tokens`` (seeded by ``--seed``).
Which requests share which iteration is decided on the clock of the inference cost
model for the same tp × pp layout on ``--cluster`` (a preset), so the CPU run executes the
batches that cluster would form; ``--block-size``, ``--kv-blocks``, ``--max-num-seqs`` and
``--max-num-batched-tokens`` are the scheduler's knobs (vLLM's names). The default pool
holds a quarter of what all requests need at once, so some requests wait for blocks.
:func:`serving_argv` hands the same flags to the MPI ranks.
"""

from __future__ import annotations

import argparse
import math

import numpy as np

from ringpipe.cost.hardware.cluster import CLUSTER_PRESETS, cluster_preset
from ringpipe.cost.inference.iteration import IterationPricer
from ringpipe.cost.inference.model import InferenceModel
from ringpipe.mesh import Mesh
from ringpipe.model.config import ModelConfig
from ringpipe.model.params import init_params
from ringpipe.model.presets import small_shape
from ringpipe.plan.serving import ServingPlan
from ringpipe.runtime.batching.policy import BatchingPolicy, Request
from ringpipe.validation import check_int, check_real

__all__ = ["DEFAULTS", "SERVING_FLAGS", "add_serving_arguments", "build_serving",
           "check_serving_flags", "serving_argv"]

#: The flags this module adds and hands to the MPI ranks: (flag, dest).
SERVING_FLAGS = (("--requests", "requests"), ("--rate", "rate"), ("--cluster", "cluster"),
          ("--block-size", "block_size"), ("--kv-blocks", "kv_blocks"),
          ("--max-num-seqs", "max_num_seqs"),
          ("--max-num-batched-tokens", "max_num_batched_tokens"))


#: The defaults of the flags above (their parser default is None, so that a flag given
#: without ``--inference`` or without ``--requests`` is refused: :mod:`ringpipe.cli.modes`).
DEFAULTS = {"rate": 10000.0, "cluster": "dgx-h100", "block_size": 4, "kv_blocks": None,
            "max_num_seqs": 8, "max_num_batched_tokens": 16}


def add_serving_arguments(g: argparse._ArgumentGroup) -> None:
    """The continuous-batching flags of ``verify --inference`` (module docstring)."""
    g.add_argument("--requests", type=int, default=None,
                   help="serve N requests with continuous batching (random lengths up to "
                        "--prompt-len and --new-tokens) instead of one static batch")
    g.add_argument("--rate", type=float, default=None,
                   help="with --requests: Poisson arrivals per second on --cluster's clock "
                        "(10000: the test model's iterations take ~0.3 ms there)")
    g.add_argument("--cluster", choices=list(CLUSTER_PRESETS), default=None,
                   help="with --requests: the cluster whose predicted iteration times "
                        "decide which requests share a batch (dgx-h100)")
    g.add_argument("--block-size", type=int, default=None, help="with --requests: KV block (4)")
    g.add_argument("--kv-blocks", type=int, default=None,
                   help="with --requests: KV blocks per rank (default: a quarter of what all "
                        "requests need)")
    g.add_argument("--max-num-seqs", type=int, default=None,
                   help="with --requests: most requests in one iteration (8)")
    g.add_argument("--max-num-batched-tokens", type=int, default=None,
                   help="with --requests: most positions in one iteration; longer prompts "
                        "are prefilled in chunks (16)")


def check_serving_flags(args: argparse.Namespace) -> None:
    """Refuse a continuous-batching flag given without ``--requests`` (it would change
    nothing), then fill in the defaults of those not given."""
    if getattr(args, "requests", None) is None:
        for flag, dest in SERVING_FLAGS[1:]:
            if getattr(args, dest, None) is not None:
                raise ValueError(f"{flag} applies only with --requests (continuous "
                                 "batching); without it the check runs one static batch")
    for dest, default in DEFAULTS.items():
        if getattr(args, dest, None) is None:
            setattr(args, dest, default)


def _traffic(args: argparse.Namespace, vocab: int) -> tuple[list[Request], list[np.ndarray]]:
    rng = np.random.default_rng(args.seed + 1)
    n = args.requests
    arrivals = np.cumsum(rng.exponential(1.0 / args.rate, n))
    prompt = rng.integers(1, args.prompt_len + 1, n)
    output = rng.integers(1, args.new_tokens + 1, n)
    reqs = [Request(i, float(arrivals[i]), int(prompt[i]), int(output[i])) for i in range(n)]
    return reqs, [rng.integers(0, vocab, int(prompt[i])) for i in range(n)]


def build_serving(args: argparse.Namespace) -> tuple[ServingPlan, dict, list[np.ndarray]]:
    """The serving plan, parameters (``init_params(config, seed)``) and each request's
    prompt the arguments describe (ValueError naming the flag when one is bad)."""
    check_serving_flags(args)
    check_int("--requests", args.requests)
    check_real("--rate", args.rate, positive=True)
    if args.seed < 0:
        raise ValueError(f"--seed must be >= 0, got {args.seed}")
    for flag in ("batch", "microbatches", "chunks"):
        if getattr(args, flag) is not None:
            raise ValueError(f"--{flag} does not apply to --requests: continuous batching "
                             "forms its own batches")
    for flag, dest in SERVING_FLAGS[3:]:
        if getattr(args, dest) is not None:
            check_int(flag, getattr(args, dest))
    check_int("--prompt-len", args.prompt_len)
    check_int("--new-tokens", args.new_tokens)
    mesh = Mesh(dp=args.dp, pp=args.pp, tp=args.tp)
    vocab = args.vocab or 64
    cfg = ModelConfig(layers=args.layers if args.layers is not None else 2 * args.pp,
                      hidden=small_shape(args.tp, args.heads, args.hidden)[1],
                      heads=small_shape(args.tp, args.heads, args.hidden)[0],
                      kv_heads=args.kv_heads,
                      seq=args.prompt_len, vocab=vocab, block=args.block, dtype=args.dtype)
    reqs, prompts = _traffic(args, vocab)
    size = args.block_size
    needs = [math.ceil(r.positions / size) for r in reqs]
    blocks = args.kv_blocks if args.kv_blocks is not None else max(max(needs),
                                                                   math.ceil(sum(needs) / 4))
    policy = BatchingPolicy(blocks, size, args.max_num_seqs, args.max_num_batched_tokens)
    price = IterationPricer(InferenceModel(cfg, cluster_preset(args.cluster)),
                            Mesh(pp=args.pp, tp=args.tp))
    plan = ServingPlan(cfg, mesh, reqs, policy, price, args.allreduce)
    return plan, init_params(cfg, args.seed), prompts


def serving_argv(args: argparse.Namespace) -> list[str]:
    """The continuous-batching flags of ``args`` as a command line again (MPI ranks)."""
    argv: list[str] = []
    if getattr(args, "requests", None) is None:  # one static batch: none of them apply
        return argv
    for flag, dest in SERVING_FLAGS:
        value = getattr(args, dest)
        if value is not None:
            text = repr(value) if isinstance(value, float) else str(value)
            argv.append(f"{flag}={text}")  # joined: a value may start with '-'

    return argv
