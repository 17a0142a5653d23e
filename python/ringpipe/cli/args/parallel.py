"""Context- and expert-parallel flags, shared by ``ringpipe verify`` and ``ringpipe plan``.

* ``--cp`` (context parallel: ring attention over the sequence cut into 2·cp chunks) and
  ``--ep`` (expert parallel: the experts split over ep ranks carved from dp × cp);
* the mixture-of-experts shape: ``--experts`` (0: dense), ``--top-k``, ``--moe-ffn``
  (expert width, default the FFN's), ``--shared-experts``, ``--dense-layers`` (the first
  layers keep a dense MLP) and ``--aux-loss-coeff`` (the load-balancing loss α);
* for ``verify``, ``--gated-mlp`` (SwiGLU MLPs; ``plan`` has its own); for ``plan``,
  ``--moe-imbalance`` (the MoE load-imbalance factor the cost model charges).

``verify`` defaults every degree to 1 and the model to dense; ``plan`` leaves ``--cp``
and ``--ep`` to the search and the shape to the preset (:func:`moe_overrides`).
"""

from __future__ import annotations

import argparse

from ringpipe.validation import check_int

__all__ = ["add_parallelism_arguments", "mesh_degrees", "moe_imbalance", "moe_overrides",
           "planner_pins", "refuse_for_inference", "refuse_for_serving",
           "refuse_with_cluster_file"]

_MOE_FLAGS = ("experts", "top_k", "moe_ffn", "shared_experts", "dense_layers")


def add_parallelism_arguments(p: argparse.ArgumentParser, *, planner: bool = False) -> None:
    """Add the flags (module docstring); ``planner``: ``ringpipe plan``'s defaults."""
    g = p.add_argument_group("context and expert parallelism, mixture of experts")
    what = "pin the {} degree (default: search)" if planner else "{} degree (default 1)"
    g.add_argument("--cp", type=int, default=None if planner else 1,
                   help=what.format("context-parallel (ring attention)"))
    g.add_argument("--ep", type=int, default=None if planner else 1,
                   help=what.format("expert-parallel (MoE experts over dp × cp ranks)"))
    g.add_argument("--experts", type=int, default=None,
                   help="MoE experts per MoE layer (0: a dense model)")
    g.add_argument("--top-k", type=int, default=None, help="experts per token (default 2)")
    g.add_argument("--moe-ffn", type=int, default=None,
                   help="width of each expert's SwiGLU (default: the FFN width)")
    g.add_argument("--shared-experts", type=int, default=None,
                   help="experts every token also goes through (default 0)")
    g.add_argument("--dense-layers", type=int, default=None,
                   help="the first layers that keep a dense MLP (default 0)")
    g.add_argument("--aux-loss-coeff", type=float, default=None,
                   help="auxiliary load-balancing loss coefficient α (default 0)")
    if not planner:
        g.add_argument("--gated-mlp", action="store_true",
                       help="SwiGLU MLPs (three matrices) instead of GeLU")
        return
    g.add_argument("--moe-imbalance", type=float, default=None,
                   help="MoE load-imbalance factor: the busiest expert-parallel rank's rows "
                        "over the mean (default 1)")


def mesh_degrees(args: argparse.Namespace) -> dict[str, int]:
    """``{"cp": ..., "ep": ...}`` for the Mesh (ValueError for a degree below 1)."""
    out = {}
    for axis in ("cp", "ep"):
        value = getattr(args, axis)
        out[axis] = 1 if value is None else check_int(f"--{axis}", value)
    return out


def moe_overrides(args: argparse.Namespace) -> dict[str, object]:
    """The ModelConfig fields the MoE flags give (only those given)."""
    out: dict[str, object] = {}
    for name in _MOE_FLAGS:
        value = getattr(args, name)
        if value is not None:
            out[name] = check_int(f"--{name.replace('_', '-')}", value,
                                  1 if name in ("top_k", "moe_ffn") else 0)
    if args.aux_loss_coeff is not None:
        if not args.aux_loss_coeff >= 0:
            raise ValueError(f"--aux-loss-coeff must be >= 0, got {args.aux_loss_coeff}")
        out["aux_loss_coeff"] = float(args.aux_loss_coeff)
    return out


def moe_imbalance(args: argparse.Namespace) -> float:
    """``--moe-imbalance`` (default 1.0; TrainingSpec checks it)."""
    return 1.0 if args.moe_imbalance is None else float(args.moe_imbalance)


def planner_pins(args: argparse.Namespace) -> dict[str, int | None]:
    """The ``--cp`` / ``--ep`` pins of ``ringpipe plan`` (None: search)."""
    return {axis: None if getattr(args, axis) is None else
            check_int(f"--{axis}", getattr(args, axis)) for axis in ("cp", "ep")}


def refuse_for_serving(args: argparse.Namespace) -> None:
    """ValueError naming the first training-only parallelism flag given to
    ``plan --inference``."""
    for flag in ("cp", "ep", "moe_imbalance"):
        if getattr(args, flag) is not None:
            raise ValueError(f"--{flag.replace('_', '-')} is for training plans, not "
                             "--inference")


def refuse_with_cluster_file(args: argparse.Namespace) -> None:
    """ValueError when ``verify --cluster-file`` (the executable-plan predictor, which
    prices dense dp × pp × tp plans) meets a CP, EP or MoE plan."""
    if getattr(args, "cluster_file", None) is None:
        return
    for flag, given in (("--cp", args.cp not in (None, 1)), ("--ep", args.ep not in (None, 1)),
                        ("--experts", bool(args.experts))):
        if given:
            raise ValueError(f"--cluster-file times and predicts dense dp × pp × tp plans; "
                             f"{flag} is not priced there (ringpipe plan prices it)")


def refuse_for_inference(args: argparse.Namespace) -> None:
    """ValueError naming the first flag ``verify --inference`` does not run."""
    for flag, given in (("--cp", args.cp not in (None, 1)), ("--ep", args.ep not in (None, 1)),
                        ("--gated-mlp", bool(getattr(args, "gated_mlp", False)))):
        if given:
            raise ValueError(f"{flag} does not apply to --inference (training plans only)")
    given = [f"--{name.replace('_', '-')}" for name in (*_MOE_FLAGS, "aux_loss_coeff")
             if getattr(args, name) is not None]
    if given:
        raise ValueError(f"{given[0]} does not apply to --inference (dense models only)")
