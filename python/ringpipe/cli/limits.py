"""The command line's work estimates: each command's arguments against :class:`Limits`.

:func:`check_command` turns a parsed ``ringpipe`` or ``python -m ringpipe.mpi`` command
line into an estimate of its work and memory and refuses (ValueError, exit 2) one over a
limit (:class:`ringpipe.limits.Limits`, from ``RINGPIPE_LIMITS``).

Memory estimates (bytes), deliberately simple upper-bound-ish counts:

* ``demo``: ranks × max-bytes × 3 (the buffers, the expected result, numba scratch);
* ``verify``: 256 MiB for the process, plus itemsize (8 in float64, 4 in float32)
  times P_l · (5 + 2 dp) + P_v · (5 + 2 dp · tp) + B·s·vocab · (6 + tp) + layers · B·s
  · (8 h · tp + 8 ffn + 3 heads · s) elements, with P_l = layers · (4h² + 2h · ffn +
  3 · experts · h · moe_ffn) layer parameters (the reference's, their gradients, the
  shards and gradients of every data-parallel replica), P_v = 2 · vocab · h + s · h
  embedding and logit-layer parameters (held whole by every TP rank), B·s·vocab logits
  (the reference's and each TP rank's, with their softmax and gradients) and the
  activations kept for the backward (the attention scores grow as s²), B the global
  batch, ffn = 4h. Fitted as an upper bound on the peak RSS of 40 measured runs
  (vocabularies up to 800 000; ``tests/cli/test_memory_estimates.py`` re-measures a few);
* ``verify --inference``: :func:`inference_memory` (KV cache, prefill activations,
  logits and parameters from ``--prompt-len``, ``--new-tokens`` and ``--batch``); its
  decode schedule has pp·groups·new-tokens cells (``max_schedule_cells``); with
  ``--requests N`` the batch is N and the continuous schedule at most pp·pp·N·new-tokens
  cells;
* ``allreduce`` (MPI, per process): max-bytes × (algorithms + 3), plus 2 × max-bytes per
  one-shot algorithm with ``--out-of-place`` (measured at 64 MiB: 7 and 13 buffers for 5
  algorithms, 3 of them one-shot, in place and out of place);
* ``plan``: :func:`plan_memory`, 256 MiB for the process plus 2 · 512 bytes per cell of
  ``max_schedule_cells`` (the schedules the search simulates and keeps, at most that
  many cells each; ``tests/cli/test_memory_estimates.py`` measures searches against it);
* ``demo``: also ``--iters`` <= ``max_iterations``;
* ``calibrate``: ``--np`` and ``--max-ranks`` count as ranks;
* ``bench``: 8 ranks × 64 MiB (16 MiB with ``--quick``) × 2.
"""

from __future__ import annotations

import argparse

from ringpipe.limits import Limits

__all__ = ["PROCESS_BYTES", "check_command", "inference_memory", "plan_memory"]


def _get(args: argparse.Namespace, name: str, default: int = 1) -> int:
    """``args.<name>`` as a size; ``default`` when it is not a size (None, not an int,
    or < 1 where the default is >= 1: a zero or negative size is refused when the
    command builds its plan, and must not divide by zero here first)."""
    value = getattr(args, name, None)
    if not isinstance(value, int) or value < min(default, 1):
        return default
    return value


def _check_ranks(limits: Limits, args: argparse.Namespace) -> None:
    world = _get(args, "dp") * _get(args, "pp") * _get(args, "tp") * _get(args, "cp")
    limits.require("max_ranks", "ranks dp·pp·cp·tp", world)
    np_ = getattr(args, "np", None)
    if isinstance(np_, int):
        limits.require("max_ranks", "--np", np_)


#: Bytes of the Python process before any work: the interpreter, NumPy, Numba and
#: ringpipe itself (about 150 MiB measured, 256 MiB counted).
PROCESS_BYTES = 256 << 20


def _chunks(args: argparse.Namespace) -> int:
    """v of the arguments' schedule (zb-v: 2; interleaved-1f1b: --stages-per-rank or 2)."""
    name = getattr(args, "schedule", None) or getattr(args, "name", None) or ""
    chunks = _get(args, "chunks", 2)
    return {"zb-v": 2, "interleaved-1f1b": chunks, "decode": chunks}.get(name, 1)


def _verify_memory(args: argparse.Namespace) -> int:
    pp, dp, tp = _get(args, "pp"), _get(args, "dp"), _get(args, "tp")
    layers = _get(args, "layers", 2 * pp * _chunks(args))
    h, vocab = _get(args, "hidden", 32), _get(args, "vocab", 0)
    seq, heads = _get(args, "seq", 8), _get(args, "heads", 4)
    m = _get(args, "microbatches", pp)
    batch = _get(args, "batch", 2 * dp * m)
    ffn = 4 * h
    itemsize = 4 if getattr(args, "dtype", "float64") == "float32" else 8
    experts, moe_ffn = _get(args, "experts", 0), _get(args, "moe_ffn", ffn)
    layer_params = layers * (4 * h * h + 2 * h * ffn + 3 * experts * h * moe_ffn)
    vocab_params = 2 * vocab * h + seq * h  # embedding, logit layer, positions
    tokens = batch * seq
    elements = (layer_params * (5 + 2 * dp) + vocab_params * (5 + 2 * dp * tp)
                + tokens * vocab * (6 + tp)
                + layers * tokens * (8 * h * tp + 8 * ffn + 3 * heads * seq))
    return PROCESS_BYTES + itemsize * elements


def inference_memory(layers: int, hidden: int, heads: int, kv_heads: int, vocab: int,
                     batch: int, prompt_len: int, new_tokens: int) -> int:
    """Upper-bound bytes of one greedy generation (float64): the process
    (:data:`PROCESS_BYTES`) and, held three times over (the reference, the parallel run
    and, on MPI rank 0, the in-process rerun), the KV cache
    2·layers·B·kv_heads·head_dim·(L+K-1), the logits B·K·vocab and the parameters;
    plus, once, the prefill's transient activations B·L·(4·heads·(L+K-1) + 16h)
    (attention scores, MLP, projections).
    Why: ``--prompt-len`` and ``--new-tokens``, not
    ``--seq``, size an inference run, and the scores grow as L²."""
    cap = prompt_len + max(new_tokens, 1) - 1
    head_dim = max(hidden // max(heads, 1), 1)
    params = layers * (4 * hidden * hidden + 8 * hidden * hidden) + 2 * vocab * hidden
    cache = 2 * layers * batch * kv_heads * head_dim * cap
    acts = batch * prompt_len * (4 * heads * cap + 16 * hidden)
    return PROCESS_BYTES + 8 * (3 * (params + cache + batch * new_tokens * vocab) + acts)


def _check_inference(limits: Limits, args: argparse.Namespace) -> None:
    pp, dp = _get(args, "pp"), _get(args, "dp")
    batch = _get(args, "batch", 2 * dp)
    k = _get(args, "new_tokens", 4)
    requests = getattr(args, "requests", None)
    if isinstance(requests, int) and requests > 0:  # continuous batching: at worst one
        # request per iteration, pp lanes; memory as if every request ran at once
        limits.require("max_schedule_cells", "continuous-batching schedule size "
                       "pp·pp·requests·new-tokens", pp * pp * requests * k)
        batch = requests
    groups = getattr(args, "microbatches", None)
    groups = groups if isinstance(groups, int) and groups > 0 else min(pp, max(batch // dp, 1))
    limits.require("max_schedule_cells", "decode schedule size pp·groups·new-tokens",
                   pp * groups * k)
    heads = _get(args, "heads", 4)
    kv = getattr(args, "kv_heads", None)
    kv = kv if isinstance(kv, int) and kv > 0 else heads
    memory = inference_memory(_get(args, "layers", 2 * pp), _get(args, "hidden", 32), heads,
                              kv, _get(args, "vocab", 0) or 64, batch,
                              _get(args, "prompt_len", 8), k)
    limits.require("max_memory", "estimated memory of --inference from --prompt-len, "
                                 "--new-tokens and --batch (bytes)", memory)


def _check_verify(limits: Limits, args: argparse.Namespace) -> None:
    _check_ranks(limits, args)
    if isinstance(getattr(args, "layers", None), int):
        limits.require("max_layers", "--layers", args.layers)
    if getattr(args, "inference", False) is True:  # sized by --prompt-len, not --seq
        return _check_inference(limits, args)
    if isinstance(getattr(args, "microbatches", None), int):
        limits.require("max_microbatches", "--microbatches", args.microbatches)
    stages = _get(args, "pp") * (_get(args, "chunks", 1) or 1)
    limits.require("max_stages", "pipeline stages pp·chunks", stages)
    limits.require("max_memory", "estimated memory (bytes)", _verify_memory(args))


def _check_schedule(limits: Limits, args: argparse.Namespace) -> None:
    p, m = _get(args, "stages"), _get(args, "microbatches")
    v = _chunks(args)  # decode: v = token steps
    limits.require("max_stages", "--stages", p)
    limits.require("max_microbatches", "--microbatches", m)
    limits.require("max_stages", "stages p·v", p * v)
    limits.require("max_schedule_cells", "schedule size p·v·m", p * v * m)


def _check_demo(limits: Limits, args: argparse.Namespace) -> None:
    ranks = _get(args, "ranks")
    limits.require("max_ranks", "--ranks", ranks)
    limits.require("max_iterations", "--iters", _get(args, "iters", 5))
    top = max(_get(args, "max_bytes"), _get(args, "min_bytes"))
    limits.require("max_memory", "estimated memory ranks·max-bytes·3 (bytes)", 3 * ranks * top)


def _check_allreduce(limits: Limits, args: argparse.Namespace) -> None:
    limits.require("max_iterations", "timed runs --iters · --reps",
                   _get(args, "iters", 10) * _get(args, "reps", 3))
    algorithms = [a for a in str(getattr(args, "algorithms", "")).split(",") if a.strip()]
    one_shot = sum("persistent" not in a for a in algorithms)
    top = max(_get(args, "max_bytes"), _get(args, "min_bytes"))
    buffers = len(algorithms) + 3 + (2 * one_shot if getattr(args, "out_of_place", False)
                                     else 0)
    limits.require("max_memory", "estimated memory per process max-bytes·(algorithms + 3, "
                   "+ 2 per one-shot algorithm out of place) (bytes)", top * buffers)


def _check_bench(limits: Limits, args: argparse.Namespace) -> None:
    largest = (16 if getattr(args, "quick", False) else 64) << 20
    limits.require("max_memory", "estimated memory 8 ranks · largest size · 2 (the "
                   "all-reduce buffers and the bound's arrays) (bytes)", 8 * largest * 2)


def _check_calibrate(limits: Limits, args: argparse.Namespace) -> None:
    for name in ("np", "max_ranks"):
        value = getattr(args, name, None)
        if isinstance(value, int):
            limits.require("max_ranks", "--" + name.replace("_", "-"), value)


#: Peak bytes per (stage, micro-batch) cell of a schedule the planner simulates: its
#: actions, execution order and simulated times (about 300 measured, for ZB-V and ZB-H1).
SCHEDULE_CELL_BYTES = 512


def plan_memory(limits: Limits) -> int:
    """Upper bound of ``ringpipe plan``'s memory: the process, and the schedules its
    pipeline simulator keeps (at most ``max_schedule_cells`` cells memoised, plus one
    being simulated of at most as many: :mod:`ringpipe.cost.training.pipeline.simulator`); the
    rest of a search (candidates, costs) is small beside them. Nothing here grows with
    ``--global-batch`` or the model's sizes."""
    return PROCESS_BYTES + 2 * SCHEDULE_CELL_BYTES * limits.max_schedule_cells


def _check_plan(limits: Limits, args: argparse.Namespace) -> None:
    if isinstance(getattr(args, "nodes", None), int):
        limits.require("max_nodes", "--nodes", args.nodes)
    limits.require("max_memory", "estimated memory of the search: the process and "
                   f"2 · max_schedule_cells · {SCHEDULE_CELL_BYTES} B of simulated "
                   "schedules (bytes)", plan_memory(limits))


_CHECKS = {"verify": _check_verify, "schedule": _check_schedule, "demo": _check_demo,
           "allreduce": _check_allreduce, "plan": _check_plan, "calibrate": _check_calibrate,
           "bench": _check_bench}


def check_command(args: argparse.Namespace, limits: Limits) -> None:
    """Refuse (ValueError) a parsed ``ringpipe`` or ``python -m ringpipe.mpi`` command
    line whose estimated work or memory exceeds ``limits`` (module docstring)."""
    check = _CHECKS.get(getattr(args, "command", None) or "")
    if check is not None:
        check(limits, args)
