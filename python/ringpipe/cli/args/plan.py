"""The command-line description of a plan, shared by ``ringpipe verify`` and the MPI ranks.

``ringpipe verify`` parses these arguments, checks them, and (with ``--backend mpi``)
hands the same arguments to every rank of ``python -m ringpipe.mpi verify`` through
:func:`plan_argv`, where :func:`build_plan` rebuilds the identical :class:`Plan`. With
``--inference`` (:func:`add_inference_arguments`), :func:`build_inference` builds the
:class:`~ringpipe.runtime.inference.InferencePlan`, its parameters and prompts, and
:func:`inference_argv` hands them on. The ranks' program is :mod:`ringpipe.cli.ranks`.
"""

from __future__ import annotations

import argparse

import numpy as np

from ringpipe.cli.args.layout import add_layout_arguments, parse_layout
from ringpipe.cli.args.parallel import (
    add_parallelism_arguments,
    mesh_degrees,
    moe_overrides,
    refuse_for_inference,
    refuse_with_cluster_file,
)
from ringpipe.cli.names.aliases import (
    VERIFY_ALIASES,
    add_aliases,
    resolve_micro_batch_size,
    schedule_name,
)
from ringpipe.cost.clusterfile.load import load_cluster_file
from ringpipe.cost.hardware.calibration import Calibration
from ringpipe.cost.hardware.cluster import Cluster
from ringpipe.mesh import Mesh
from ringpipe.model.config import ModelConfig
from ringpipe.model.params import init_params
from ringpipe.model.presets import small_shape
from ringpipe.plan import ALLREDUCE_ALGORITHMS, InferencePlan, Plan
from ringpipe.schedules import SCHEDULES, Schedule, load_csv, resolve_chunks
from ringpipe.schedules.registry import SYNTH, SYNTH_ALIAS
from ringpipe.validation import check_int

__all__ = ["DEVICES", "add_inference_arguments", "add_plan_arguments", "build_inference",
           "build_plan", "calibrated_cluster", "inference_argv", "plan_argv"]

#: Where an MPI process computes: the CPU (NumPy) or its local GPU (CuPy).
DEVICES = ("cpu", "cupy")


#: Defaults of the mode-specific flags (their parser default is None, so that a flag of
#: the other mode can be refused: :mod:`ringpipe.cli.modes`).
DEFAULT_SEQ = 8
DEFAULT_SCHEDULE = "1f1b"
DEFAULT_SPLIT = "even"
DEFAULT_PROMPT_LEN = 8
DEFAULT_NEW_TOKENS = 4


def add_plan_arguments(p: argparse.ArgumentParser) -> None:
    """The arguments that describe a plan, its model, batch and output format (shared
    with ``python -m ringpipe.mpi verify``)."""
    p.add_argument("--tp", type=int, default=1, help="tensor-parallel degree (default 1)")
    p.add_argument("--pp", type=int, default=1, help="pipeline ranks p (default 1)")
    p.add_argument("--dp", type=int, default=1, help="data-parallel degree (default 1)")
    p.add_argument("--schedule", choices=[*SCHEDULES, SYNTH, SYNTH_ALIAS],
                   default=None, type=schedule_name,
                   help="pipeline schedule (default 1f1b; synth/auto: synthesised for the "
                        "stages' FLOPs; PyTorch's class names such as Schedule1F1B are "
                        "accepted)")
    p.add_argument("--schedule-csv", default=None, metavar="FILE",
                   help="run the schedule in FILE (PyTorch's CSV layout, e.g. from "
                        "'ringpipe schedule synth --format csv') instead of --schedule")
    p.add_argument("--microbatches", type=int, default=None,
                   help="default: the number of pipeline ranks")
    p.add_argument("--stages-per-rank", "--chunks", type=int, default=None, dest="chunks",
                   help="v, stages per pipeline rank (interleaved-1f1b; zb-v is fixed at 2)")
    add_layout_arguments(p, DEFAULT_SPLIT)
    p.set_defaults(split=None)  # given or not tells the modes apart (ringpipe.cli.modes)
    p.add_argument("--allreduce", choices=(*ALLREDUCE_ALGORITHMS, "nccl"), default="ring",
                   help="TP and DP all-reduce: ringpipe's ring or tree step tables, or nccl "
                        "(--backend mpi --device cupy only)")
    p.add_argument("--device", choices=DEVICES, default="cpu",
                   help="with --backend mpi: where each process computes (cupy: its local "
                        "GPU, chosen by its rank on the node)")
    p.add_argument("--allow-cross-node-tp", action="store_true",
                   help="with --backend mpi: run even if a TP group spans nodes")
    p.add_argument("--layers", type=int, default=None, help="default: 2 per stage")
    p.add_argument("--hidden", type=int, default=None,
                   help="model width h (default 32, or 8 × heads when 32 does not divide)")
    p.add_argument("--heads", type=int, default=None,
                   help="attention heads (default 4, or the next multiple of --tp)")
    p.add_argument("--seq", type=int, default=None,
                   help=f"sequence length (default {DEFAULT_SEQ})")
    p.add_argument("--vocab", type=int, default=0, help="0: dense inputs, MSE loss")
    p.add_argument("--block", choices=("transformer", "mlp"), default="transformer",
                   help="layer type; mlp: no attention, quicker (default transformer)")
    p.add_argument("--batch", type=int, default=None,
                   help="global batch (default: 2 × dp × microbatches)")
    p.add_argument("--dtype", choices=("float64", "float32"), default="float64",
                   help="parameters and compute (default float64)")
    p.add_argument("--seed", type=int, default=0,
                   help="seed of the parameters; the batch uses seed+1 (default 0)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--cluster-file", default=None,
                   help="calibrated cluster file (ringpipe calibrate): also report the "
                        "measured and predicted step time")
    p.add_argument("--verbose", action="store_true",
                   help="list the error of every tensor (default: loss, output and the 8 "
                        "largest gradient errors)")
    p.add_argument("--micro-batch-size", type=int, default=None,
                   help="sequences per micro-batch (Megatron's flag): sets --microbatches "
                        "to batch / (dp × this)")
    add_parallelism_arguments(p)
    add_aliases(p, VERIFY_ALIASES)  # Megatron-LM's names (ringpipe.cli.names.aliases)


def heads_and_hidden(args: argparse.Namespace) -> tuple[int, int]:
    """``--heads`` and ``--hidden``, defaulting to a model every ``--tp`` splits
    (:func:`ringpipe.model.presets.small_shape`)."""
    return small_shape(args.tp, args.heads, args.hidden)


def plan_argv(args: argparse.Namespace) -> list[str]:
    """``args``' plan arguments as a command line again (for the MPI ranks), each value
    joined to its flag (``--cluster-file=-cal.toml``), so that a value starting with
    ``-`` reads as the value it is."""
    parser = argparse.ArgumentParser(add_help=False)
    add_plan_arguments(parser)
    argv: list[str] = []
    for action in parser._actions:
        value = getattr(args, action.dest, None)
        if isinstance(action, argparse._StoreTrueAction):
            argv += [action.option_strings[0]] if value else []
        elif value is not None:
            argv.append(f"{action.option_strings[0]}={value}")
    return argv


def _mesh(args: argparse.Namespace, **degrees: int) -> Mesh:
    """The mesh of ``--dp --pp --tp`` (each checked under its flag's name) and
    ``degrees`` (cp, ep: :func:`ringpipe.cli.args.parallel.mesh_degrees`)."""
    for flag in ("dp", "pp", "tp"):
        check_int(f"--{flag}", getattr(args, flag))
    return Mesh(dp=args.dp, pp=args.pp, tp=args.tp, **degrees)


def build_plan(args: argparse.Namespace) -> tuple[Plan, int]:
    """The plan and global batch size the arguments describe (ValueError if invalid)."""
    if args.seed < 0:
        raise ValueError(f"--seed must be >= 0, got {args.seed}")
    resolve_micro_batch_size(args)
    refuse_with_cluster_file(args)
    mesh = _mesh(args, **mesh_degrees(args))
    given = _schedule_csv(args)
    m = args.microbatches if args.microbatches is not None else (
        args.pp if given is None else given.num_microbatches)
    check_int("--microbatches", m)
    if args.chunks is not None:
        check_int("--stages-per-rank (--chunks)", args.chunks)
    schedule = DEFAULT_SCHEDULE if args.schedule is None else args.schedule
    layout = parse_layout(args)
    if layout is not None:
        default_layers = layout.num_layers
    elif given is not None:
        default_layers = 2 * given.num_stages
    else:
        default_layers = 2 * args.pp * resolve_chunks(schedule, args.chunks)
    layers = args.layers if args.layers is not None else default_layers
    heads, hidden = heads_and_hidden(args)
    cfg = ModelConfig(layers=layers, hidden=hidden, heads=heads,
                      seq=DEFAULT_SEQ if args.seq is None else args.seq,
                      vocab=args.vocab, block=args.block, dtype=args.dtype,
                      gated_mlp=args.gated_mlp, **moe_overrides(args))
    # NCCL's ring moves the bytes of the ring step table: the plan counts with that table
    allreduce = "ring" if args.allreduce == "nccl" else args.allreduce
    plan = Plan(cfg, mesh, schedule=schedule if given is None else given,
                microbatches=m, allreduce=allreduce,
                chunks=args.chunks, layout=layout,
                split="even" if layout is not None else (args.split or DEFAULT_SPLIT))
    batch = args.batch if args.batch is not None else 2 * args.dp * m
    plan.check_batch_size(batch)
    return plan, batch


def _schedule_csv(args: argparse.Namespace) -> Schedule | None:
    """The schedule of ``--schedule-csv`` (None without it); ValueError when unreadable,
    given with a --schedule other than the default, or not a schedule."""
    path = getattr(args, "schedule_csv", None)
    if path is None:
        return None
    if args.schedule not in (None, DEFAULT_SCHEDULE):
        raise ValueError("--schedule-csv and --schedule contradict (the file is the schedule)")
    try:
        return load_csv(path)
    except OSError as exc:
        raise ValueError(f"--schedule-csv: cannot read {path}: {exc.strerror}") from None


def add_inference_arguments(p: argparse.ArgumentParser) -> None:
    """``--inference`` and its sizes (the rest of the plan arguments are shared)."""
    g = p.add_argument_group("inference (with --inference)")
    g.add_argument("--inference", action="store_true",
                   help="verify greedy generation with a KV cache instead of training")
    # defaults None: given or not tells the modes apart (ringpipe.cli.modes)
    g.add_argument("--prompt-len", type=int, default=None, help="prompt tokens L (8)")
    g.add_argument("--new-tokens", type=int, default=None, help="generated tokens K (4)")
    g.add_argument("--kv-heads", type=int, default=None,
                   help="key/value heads (grouped-query attention); default: --heads")
    from ringpipe.cli.args.serving import add_serving_arguments  # noqa: PLC0415 - cost layer

    add_serving_arguments(g)  # --requests: continuous batching (ringpipe.cli.args.serving)
    add_aliases(p, {"--kv-heads": VERIFY_ALIASES["--kv-heads"]})


def build_inference(args: argparse.Namespace) -> tuple[InferencePlan, dict, np.ndarray]:
    """The plan, parameters (``init_params(config, seed)``) and prompts (ids from
    ``default_rng(seed + 1)``) the arguments describe. ``--vocab 0`` means 64 here (a
    language model is needed); ``--microbatches`` is the number of groups in flight."""
    if args.seed < 0:
        raise ValueError(f"--seed must be >= 0, got {args.seed}")
    if args.chunks is not None:
        raise ValueError("--chunks does not apply to --inference (the decode schedule has "
                         "one chunk per token step)")
    if getattr(args, "micro_batch_size", None) is not None:
        raise ValueError("--micro-batch-size does not apply to --inference (--microbatches "
                         "is the number of groups in flight)")
    refuse_for_inference(args)
    prompt_len = check_int("--prompt-len", DEFAULT_PROMPT_LEN if args.prompt_len is None
                           else args.prompt_len)
    new_tokens = check_int("--new-tokens", DEFAULT_NEW_TOKENS if args.new_tokens is None
                           else args.new_tokens)
    if args.kv_heads is not None:
        check_int("--kv-heads", args.kv_heads)
    mesh = _mesh(args)
    vocab = args.vocab or 64
    cfg = ModelConfig(layers=args.layers if args.layers is not None else 2 * args.pp,
                      hidden=heads_and_hidden(args)[1], heads=heads_and_hidden(args)[0],
                      kv_heads=args.kv_heads,
                      seq=prompt_len, vocab=vocab, block=args.block, dtype=args.dtype)
    batch = args.batch if args.batch is not None else 2 * args.dp
    plan = InferencePlan(cfg, mesh, batch, prompt_len, new_tokens, args.microbatches,
                         args.allreduce)
    prompts = np.random.default_rng(args.seed + 1).integers(0, vocab, (batch, prompt_len))
    return plan, init_params(cfg, args.seed), prompts


def inference_argv(args: argparse.Namespace) -> list[str]:
    """``args`` as a command line again (for the MPI ranks)."""
    from ringpipe.cli.args.serving import serving_argv  # noqa: PLC0415

    extra = {"--prompt-len": args.prompt_len, "--new-tokens": args.new_tokens,
             "--kv-heads": args.kv_heads}
    return ["--inference", *plan_argv(args),
            *(f"{flag}={value}" for flag, value in extra.items() if value is not None),
            *serving_argv(args)]


def calibrated_cluster(path: str | None) -> tuple[Cluster, Calibration] | None:
    """The calibrated cluster of ``--cluster-file`` (None without one), read as ``ringpipe
    plan --cluster-file`` reads it (:func:`~ringpipe.cost.clusterfile.load_cluster_file`);
    ValueError or TypeError naming the file and the key when it cannot be used, or when
    it has no ``[measured]`` table."""
    return None if path is None else load_cluster_file(path).calibrated()
