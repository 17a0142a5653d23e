"""Prove parallel generation computes what one device computes: greedy tokens and logits.

:func:`verify_inference` runs an :class:`~ringpipe.runtime.inference.InferencePlan` on
in-process ranks and the single-device reference :func:`~ringpipe.model.generate.generate`
on the same parameters and prompts: the greedy tokens must be identical and the logits
agree normwise (``max|plan - ref| / max|ref|``) to 1e-10 in float64 (1e-4 in float32).

The command-line description (:func:`add_inference_arguments`, :func:`build_inference`)
lives here, in the library, so that ``ringpipe verify --inference`` and its MPI ranks
(``python -m ringpipe.mpi verify --inference``, started by ``--backend mpi``) build the
same plan, parameters and prompts. The ranks check, on rank 0, the reference and, bit for
bit, the in-process run (tokens, logits and every counter).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ringpipe.cli.plan_args import plan_argv
from ringpipe.mesh import Mesh
from ringpipe.model.config import ModelConfig
from ringpipe.model.generate import generate
from ringpipe.model.params import init_params
from ringpipe.runtime.inference import InferencePlan, InferenceResult, run_inprocess_inference
from ringpipe.validation import check_int
from ringpipe.verify.training import TOLERANCES, relative_error

__all__ = ["InferenceReport", "add_inference_arguments", "build_inference", "compare",
           "inference_argv", "prepare_inference", "verify_inference"]


def add_inference_arguments(p: argparse.ArgumentParser) -> None:
    """``--inference`` and its sizes (the rest of the plan arguments are shared)."""
    g = p.add_argument_group("inference (with --inference)")
    g.add_argument("--inference", action="store_true",
                   help="verify greedy generation with a KV cache instead of training")
    g.add_argument("--prompt-len", type=int, default=8, help="prompt tokens L (8)")
    g.add_argument("--new-tokens", type=int, default=4, help="generated tokens K (4)")
    g.add_argument("--kv-heads", type=int, default=None,
                   help="key/value heads (grouped-query attention); default: --heads")


def build_inference(args: argparse.Namespace) -> tuple[InferencePlan, dict, np.ndarray]:
    """The plan, parameters (``init_params(config, seed)``) and prompts (ids from
    ``default_rng(seed + 1)``) the arguments describe. ``--vocab 0`` means 64 here (a
    language model is needed); ``--microbatches`` is the number of groups in flight."""
    if args.seed < 0:
        raise ValueError(f"--seed must be >= 0, got {args.seed}")
    if args.chunks is not None:
        raise ValueError("--chunks does not apply to --inference (the decode schedule has "
                         "one chunk per token step)")
    check_int("--prompt-len", args.prompt_len)
    check_int("--new-tokens", args.new_tokens)
    if args.kv_heads is not None:
        check_int("--kv-heads", args.kv_heads)
    mesh = Mesh(dp=args.dp, pp=args.pp, tp=args.tp)
    vocab = args.vocab or 64
    cfg = ModelConfig(layers=args.layers if args.layers is not None else 2 * args.pp,
                      hidden=args.hidden, heads=args.heads, kv_heads=args.kv_heads,
                      seq=args.prompt_len, vocab=vocab, block=args.block, dtype=args.dtype)
    batch = args.batch if args.batch is not None else 2 * args.dp
    plan = InferencePlan(cfg, mesh, batch, args.prompt_len, args.new_tokens,
                         args.microbatches, args.allreduce)
    prompts = np.random.default_rng(args.seed + 1).integers(0, vocab, (batch, args.prompt_len))
    return plan, init_params(cfg, args.seed), prompts


def inference_argv(args: argparse.Namespace) -> list[str]:
    """``args`` as a command line again (for the MPI ranks)."""
    argv = ["--inference", *plan_argv(args), "--prompt-len", str(args.prompt_len),
            "--new-tokens", str(args.new_tokens)]
    return argv + ([] if args.kv_heads is None else ["--kv-heads", str(args.kv_heads)])


@dataclass(frozen=True)
class InferenceReport:
    """Parallel generation against the reference."""

    ok: bool
    tokens_equal: bool
    max_rel_error: float
    tolerance: float
    result: InferenceResult

    def as_json(self) -> dict[str, object]:
        """The ``ringpipe verify --inference --json`` document."""
        return {"ok": self.ok, "tokens_equal": self.tokens_equal,
                "max_rel_error": self.max_rel_error, "tolerance": self.tolerance,
                "tokens": self.result.tokens.tolist(),
                "kv_cache_bytes": [c.kv_cache_bytes for c in self.result.counters],
                "allreduce_calls": [c.allreduce_calls["tp"] for c in self.result.counters],
                "bytes_sent": [c.bytes_sent for c in self.result.counters]}

    def format(self, plan: InferencePlan) -> str:
        """The human-readable report."""
        lines = [f"{plan}", f"ok: {self.ok}  tokens_equal: {self.tokens_equal}  "
                 f"max_rel_error: {self.max_rel_error:.3e} (tolerance {self.tolerance:g})",
                 "rank (d,p,t)  kv_cache_bytes  tp_allreduces  pp_bytes_sent"]
        for c in self.result.counters:
            lines.append(f"{c.rank:4d} ({c.dp},{c.pp},{c.tp})  {c.kv_cache_bytes:14d}  "
                         f"{c.allreduce_calls['tp']:13d}  {c.bytes_sent['pp']:13d}")
        return "\n".join(lines)


def compare(plan: InferencePlan, result: InferenceResult, params: dict,
            prompts: np.ndarray) -> InferenceReport:
    """``result`` (from any runtime) against the single-device reference."""
    ref = generate(plan.config, params, prompts, plan.new_tokens)
    tol = TOLERANCES[plan.config.dtype]
    equal = bool(np.array_equal(result.tokens, ref.tokens))
    err, _ = relative_error(result.logits, ref.logits)
    return InferenceReport(equal and err <= tol, equal, err, tol, result)


def verify_inference(plan: InferencePlan, params: dict, prompts: np.ndarray,
                     backend: str = "numba") -> InferenceReport:
    """Run ``plan`` on in-process ranks and compare with the reference."""
    return compare(plan, run_inprocess_inference(plan, params, prompts, backend), params,
                   prompts)


def prepare_inference(args: argparse.Namespace) -> Callable[[], int]:
    """The MPI ranks' job for ``python -m ringpipe.mpi verify --inference``: build and
    check on this rank (TypeError/ValueError, alike on every rank, reported collectively
    by :mod:`ringpipe.cli.ranks.main`); the job runs generation over MPI and rank 0 checks
    the reference and, bit for bit, the in-process run; returns rank 0's verdict."""
    from ringpipe.mpi.loader import load_mpi
    from ringpipe.mpi.mesh_comm import check_world_size
    from ringpipe.runtime.inference_mpi import run_inference_mpi

    world = load_mpi().COMM_WORLD
    plan, params, prompts = build_inference(args)
    check_world_size(plan.mesh, world.Get_size())

    def job() -> int:
        result = run_inference_mpi(plan, params, prompts, world)
        status = 0
        if world.Get_rank() == 0:
            assert result is not None
            report = compare(plan, result, params, prompts)
            inproc = run_inprocess_inference(plan, params, prompts, "numpy")
            bitwise = (np.array_equal(result.logits, inproc.logits)
                       and np.array_equal(result.tokens, inproc.tokens))
            counters = result.counters == inproc.counters
            ok = report.ok and bitwise and counters
            if args.json:
                print(json.dumps({**report.as_json(), "ok": ok, "backend": "mpi",
                                  "processes": world.Get_size(), "bitwise_inproc": bitwise,
                                  "counters_equal_inproc": counters}, indent=2))
            else:
                print(report.format(plan))
                print(f"# mpi: {world.Get_size()} processes; bitwise equal to the "
                      f"in-process run: {bitwise}; counters equal: {counters}")
            status = 0 if ok else 1
        return int(world.bcast(status, root=0))

    return job


if __name__ == "__main__":
    # the ranks' entry point is ringpipe.mpi, which checks arguments collectively and
    # runs the watchdog; importing it from here would make an import cycle
    print("error: the MPI ranks' entry point is `python -m ringpipe.mpi verify "
          "--inference ...` (or `ringpipe verify --inference --backend mpi`)",
          file=sys.stderr)
    sys.exit(2)
