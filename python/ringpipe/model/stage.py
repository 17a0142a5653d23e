"""One pipeline stage, tensor-parallel over a TP group: the calls the runtime makes.

A stage holds blocks ``[first, last)``, possibly none; the stage with ``spec.embedding``
also holds the input layer (embedding or ``in_proj``), the one with ``spec.head`` the
final norm, head and loss (:class:`~ringpipe.model.stage_spec.StageSpec`), so a stage
holding only the embedding or only the head runs like any other. By default all T
ranks of its TP group run in this process, so the API is per-rank lists (index = tp
rank):

- ``shards[t]``: rank t's parameters (:func:`~ringpipe.model.sharding.shard_params`;
  extra names are ignored, so whole-model shards may be passed);
- ``xs[t]``: rank t's copy of the stage input -- the micro-batch on the first stage
  (token ids ``(b, seq)`` or dense ``(b, seq, hidden)``), else the activation
  ``(b, seq, hidden)``. All copies hold the same values (they may be one object);
- outputs ``ys[t]`` and input gradients ``dxs[t]`` are ``(b, seq, hidden)`` lists in
  the same way (distinct arrays per rank, identical values).

Loss scaling: the last stage returns ``loss_scale * mean_loss(micro-batch)`` and
back-propagates its gradient. The reference loss is the mean over the global batch of
B sequences, so with micro-batches of b_i sequences (over all data-parallel replicas)
pass ``loss_scale = b_i / B``: sum_i (b_i / B) mean_i = (1 / B) sum_i b_i mean_i, the
global mean. Summing the returned losses and the parameter gradients over micro-batches
and DP replicas then gives the reference's loss and gradients. With one micro-batch
and ``loss_scale=1.0`` a tp=1 stage chain is bitwise equal to the reference.

**Local-rank mode** (``StageSpec(..., local=True)``, or ``spec.local_view()``): a process
that holds only *one* rank of the TP group (the MPI runtime, :mod:`ringpipe.runtime.mpi`)
passes lists of length 1 -- its own shard, its own copy of the activation -- while
``spec.tp`` stays T, so shard shapes and heads per rank are those of a T-way split.
``all_reduce([buf])`` must then sum ``buf`` across the T processes of the TP group in
place (over a communicator). The maths per rank is the same code path, so each process
computes bitwise what rank t computes in the all-ranks mode.

**Devices.** Shards, inputs, targets and activations are NumPy arrays (computed on the
host) or CuPy arrays (computed on their GPU, :mod:`ringpipe.arrays`); every array of a
call must live where the shards do, else TypeError. The loss comes back as a float.

Backward follows zero-bubble pipeline parallelism (Qi et al., ICLR 2024): the I pass
(:func:`stage_backward_input`, all TP communication) gives the input gradient and a
:class:`WeightCache`; the W pass (:func:`stage_backward_weight`) gives the parameter
gradients. All-reduces per block: 2 forward, 2 in I, 0 in W (1, 1, 0 for the MLP block);
the all-reduce is called even when tp == 1, so counts do not depend on tp.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from types import ModuleType

import numpy as np

from ringpipe.arrays import array_kind, array_module, is_array
from ringpipe.model import blocks as B
from ringpipe.model.blocks.comm import LayerComm, as_layer_comm
from ringpipe.model.config import ModelConfig
from ringpipe.model.inputs import check_batch, check_targets
from ringpipe.model.layers import AllReduce
from ringpipe.model.params import check_arrays
from ringpipe.model.stage_spec import StageSpec

__all__ = ["StageCache", "StageSpec", "WeightCache", "stage_backward", "stage_backward_input",
           "stage_backward_weight", "stage_forward"]


@dataclass
class StageCache:
    """What backward needs from a forward. ``output`` is the head's output
    ``(b, seq, vocab or hidden)`` and ``loss`` the scaled loss (last stage only), of the
    first rank held; ``outputs`` and ``losses`` are every held rank's (they differ across
    CP ranks and replicas). ``aux`` is each rank's part of the MoE auxiliary loss, summed
    over the stage's MoE layers (0.0 without any)."""

    spec: StageSpec
    batch: int
    shards: list[dict[str, np.ndarray]]
    inputs: list[np.ndarray] | None
    blocks: list[list[dict]]
    head: list[dict] | None
    output: np.ndarray | None = None
    loss: float | None = None
    outputs: list | None = None
    losses: list[float] | None = None
    aux: list[float] | None = None


@dataclass
class WeightCache:
    """Saved (input, output-gradient) pairs from the I pass, per tp rank."""

    spec: StageSpec
    jobs: list[list[B.WeightJob]] = field(default_factory=list)


def _check_spec(spec: object) -> StageSpec:
    if not isinstance(spec, StageSpec):
        raise TypeError(f"spec must be a StageSpec, got {type(spec).__name__}")
    return spec


def _check_list(name: str, value: object, spec: StageSpec) -> list:
    n = spec.ranks_here
    if not isinstance(value, list) or len(value) != n:
        if spec.local:
            raise ValueError(f"{name} must be a list of length 1 in local-rank mode (this "
                             f"process's own tp rank of {spec.tp})")
        raise ValueError(f"{name} must be a list with one entry per tp rank ({n})")
    return value


def _check_shards(spec: StageSpec, shards: object) -> ModuleType:
    """Check the shards; return their array module (every rank's on one kind of device)."""
    _check_list("shards", shards, spec)
    want = spec.param_shapes()
    first_name = next(iter(want))
    xp = None
    for t, shard in enumerate(shards):  # type: ignore[arg-type]
        check_arrays(f"shards[{t}]", shard, want, spec.config.np_dtype, exact=False,
                     device_ok=True)
        module = array_module(shard[first_name])
        xp = module if xp is None else xp
        if module is not xp:
            raise TypeError(f"shards[{t}] holds {module.__name__} arrays but shards[0] holds "
                            f"{xp.__name__} arrays; one TP group computes on one kind of "
                            "device")
    assert xp is not None
    return xp


def _shards_module(spec: StageSpec, shards: list[dict[str, np.ndarray]]) -> ModuleType:
    return array_module(shards[0][next(iter(spec.param_shapes()))])


def _check_on(name: str, x: object, xp: ModuleType) -> None:
    """``x`` must live where the shards do (CuPy never mixes host and device arrays)."""
    if array_module(x) is not xp:
        raise TypeError(f"{name} is a {array_kind(x)} but the shards are {xp.__name__} "
                        "arrays; pass it on the shards' device")


def _check_activations(name: str, spec: StageSpec, xs: object,
                       xp: ModuleType) -> tuple[list[np.ndarray], int]:
    cfg = spec.local_config
    xs = _check_list(name, xs, spec)
    first = xs[0]
    for t, x in enumerate(xs):
        if not is_array(x):
            raise TypeError(f"{name}[{t}] must be an array (numpy, or cupy on a GPU), got "
                            f"{type(x).__name__}")
        _check_on(f"{name}[{t}]", x, xp)
        if x.ndim != 3 or x.shape[1:] != (cfg.seq, cfg.hidden) or x.shape[0] < 1:
            raise ValueError(f"{name}[{t}] must have shape (batch, seq={cfg.seq}, "
                             f"hidden={cfg.hidden}), got {x.shape}")
        if x.shape != first.shape:
            raise ValueError(f"{name}[{t}] has shape {x.shape} but {name}[0] has {first.shape}")
        if x.dtype != cfg.np_dtype:
            raise TypeError(f"{name}[{t}] has dtype {x.dtype}, expected {cfg.np_dtype}")
    b = first.shape[0]
    return [x.reshape(b * cfg.seq, cfg.hidden) for x in xs], b


def stage_forward(spec: StageSpec, shards: list[dict[str, np.ndarray]], xs: list[np.ndarray],
                  all_reduce: AllReduce | LayerComm, targets: np.ndarray | list | None = None,
                  loss_scale: float = 1.0) -> tuple[list[np.ndarray] | float, StageCache]:
    """Run the stage forward on every rank of its TP group.

    Returns ``(ys, cache)`` -- ``ys[t]`` the ``(b, seq, hidden)`` output on rank t -- or,
    on the last stage, ``(loss, cache)`` with ``loss = loss_scale * mean loss`` of this
    micro-batch (``targets``: ids ``(b, seq)`` or dense ``(b, seq, hidden)``, required
    there and only there) and the head output in ``cache.output``.
    """
    spec = _check_spec(spec)
    cfg, tp = spec.local_config, spec.tp
    xp = _check_shards(spec, shards)
    comm = as_layer_comm(all_reduce, spec.ranks_here)
    if isinstance(loss_scale, bool) or not isinstance(loss_scale, (int, float, np.floating)):
        raise TypeError(f"loss_scale must be a float, got {type(loss_scale).__name__}")
    if not (math.isfinite(loss_scale) and loss_scale > 0):
        raise ValueError(f"loss_scale must be finite and > 0, got {loss_scale}")
    if spec.is_first:
        checked: dict[int, np.ndarray] = {}  # ranks usually share one batch object
        batches = []
        for t, x in enumerate(_check_list("xs", xs, spec)):
            if id(x) not in checked:
                checked[id(x)] = check_batch(cfg, x, f"xs[{t}]", device_ok=True)
            batches.append(checked[id(x)])
        for t, x in enumerate(batches):
            _check_on(f"xs[{t}]", x, xp)
        b = batches[0].shape[0]
        if any(x.shape != batches[0].shape for x in batches):
            raise ValueError("xs entries (the micro-batch per tp rank) differ in shape")
        n = b * cfg.seq
        inputs = [x.reshape(n) if cfg.vocab else x.reshape(n, cfg.hidden) for x in batches]
        hs = B.input_forward(cfg, shards, inputs)
    else:
        hs, b = _check_activations("xs", spec, xs, xp)
        inputs = None
    if spec.is_last:
        if targets is None:
            raise ValueError("targets is required on the last stage")
        tgt = _check_all_targets(cfg, targets, b, xp, spec.ranks_here)
    elif targets is not None:
        raise ValueError("targets must be None except on the last stage")
    caches = []
    for layer in range(spec.first, spec.last):
        hs, c = B.block_forward(cfg, layer, shards, hs, comm, b, tp,
                                aux_weight=float(loss_scale) / b)
        caches.append(c)
    cache = StageCache(spec, b, shards, inputs, caches, None)
    cache.aux = [sum(c[t]["moe"].aux for c in caches if "moe" in c[t])
                 for t in range(len(hs))]
    if not spec.is_last:
        return [h.reshape(b, cfg.seq, cfg.hidden) for h in hs], cache
    # each CP rank's mean is over its seq / cp positions: scale it to a share of the mean
    scale = float(loss_scale) / comm.cp
    losses, outs, cache.head = B.head_forward(cfg, shards, hs, tgt, scale)
    cache.outputs = [o.reshape(b, cfg.seq, o.shape[1]) for o in outs]
    # one device-to-host read per TP group (lists hold whole TP groups, TP innermost):
    # its ranks' losses agree bit for bit
    group = spec.tp if spec.ranks_here % spec.tp == 0 else 1
    firsts = {i: float(losses[i]) * scale for i in range(0, len(losses), group)}
    cache.losses = [firsts[i - i % group] for i in range(len(losses))]
    cache.output, cache.loss = cache.outputs[0], cache.losses[0]
    return cache.loss, cache


def _check_all_targets(cfg: ModelConfig, targets: object, b: int, xp: ModuleType,
                       ranks: int) -> list[np.ndarray]:
    """The targets per rank held, flattened: one array for all of them, or a list with
    one per rank (CP ranks and replicas hold different positions and sequences)."""
    per_rank = targets if isinstance(targets, list) else [targets] * ranks
    if len(per_rank) != ranks:
        raise ValueError(f"targets must be an array or a list with one per rank held "
                         f"({ranks}), got a list of {len(per_rank)}")
    checked: dict[int, np.ndarray] = {}
    for t in per_rank:
        if id(t) not in checked:
            tgt = check_targets(cfg, t, b, device_ok=True)
            _check_on("targets", tgt, xp)
            checked[id(t)] = tgt.reshape(b * cfg.seq) if cfg.vocab else \
                tgt.reshape(b * cfg.seq, cfg.hidden)
    return [checked[id(t)] for t in per_rank]


def stage_backward_input(spec: StageSpec, cache: StageCache, dys: list[np.ndarray] | None,
                         all_reduce: AllReduce | LayerComm
                         ) -> tuple[list[np.ndarray] | None, WeightCache]:
    """The I pass: ``(dxs, wcache)``. ``dys[t]`` is dL/d(stage output) on rank t, or None
    on the last stage (the loss gradient starts there). ``dxs`` is None on the first
    stage (its input is data). The arrays in ``dys`` are kept (by reference) in
    ``wcache`` until the W pass: do not modify them in between."""
    spec = _check_spec(spec)
    if not isinstance(cache, StageCache) or cache.spec != spec:
        raise ValueError("cache must be the StageCache stage_forward returned for this spec")
    comm = as_layer_comm(all_reduce, spec.ranks_here)
    cfg, shards = spec.local_config, cache.shards
    jobs: list[list[B.WeightJob]] = [[] for _ in range(spec.ranks_here)]
    if spec.is_last:
        if dys is not None:
            raise ValueError("dys must be None on the last stage (the loss starts backward)")
        assert cache.head is not None
        ds = B.head_backward_input(cfg, shards, cache.head, jobs)
    else:
        ds, b = _check_activations("dys", spec, dys, _shards_module(spec, shards))
        if b != cache.batch:
            raise ValueError(f"dys has batch size {b} but the forward had {cache.batch}")
    for layer, c in zip(reversed(range(spec.first, spec.last)), reversed(cache.blocks),
                        strict=True):
        ds = B.block_backward_input(cfg, layer, shards, c, ds, comm, jobs)
    wcache = WeightCache(spec, jobs)
    if spec.is_first:
        assert cache.inputs is not None
        B.input_backward(cfg, cache.inputs, ds, jobs)
        return None, wcache
    return [d.reshape(cache.batch, cfg.seq, cfg.hidden) for d in ds], wcache


def stage_backward_weight(spec: StageSpec, wcache: WeightCache) -> list[dict[str, np.ndarray]]:
    """The W pass: per tp rank, the gradient of every parameter of the stage (names and
    shard shapes of ``spec.param_shapes()``). No communication."""
    spec = _check_spec(spec)
    if not isinstance(wcache, WeightCache) or wcache.spec != spec:
        raise ValueError("wcache must be the WeightCache stage_backward_input returned "
                         "for this spec")
    order = spec.param_shapes()
    out = []
    for jobs in wcache.jobs:
        grads = B.run_weight_jobs(spec.config, jobs)
        out.append({name: grads[name] for name in order})
    return out


def stage_backward(spec: StageSpec, cache: StageCache, dys: list[np.ndarray] | None,
                   all_reduce: AllReduce | LayerComm) -> tuple[list[np.ndarray] | None,
                                                   list[dict[str, np.ndarray]]]:
    """Full backward, I then W: ``(dxs, grads)`` with ``grads[t]`` rank t's gradients."""
    dxs, wcache = stage_backward_input(spec, cache, dys, all_reduce)
    return dxs, stage_backward_weight(spec, wcache)
