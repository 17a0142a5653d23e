"""The operators the NumPy model of :mod:`ringpipe.model` runs, with their real shapes.

For one pipeline stage of an executable :class:`ringpipe.Plan`, one micro-batch of b
sequences of length s (T = b·s rows) and one TP rank (h hidden, f = ffn, a = heads/t
local heads of width d, t = TP size), :func:`stage_ops` lists what the forward (F),
the input-gradient pass (I) and the weight-gradient pass (W) execute:

* GEMMs as (M, N, K, batch): column-parallel QKV T×3h/t×h and fc1 T×f/t×h, row-parallel
  out-proj T×h×h/t and fc2 T×h×f/t, the attention scores QKᵀ (s×s×d) and P·V (s×d×s)
  over b·a heads; I runs each layer GEMM's input gradient (T×K×N), W its weight
  gradient (K×N×T); the replicated input projection / head (T×h×h, T×V×h) on the
  first / last stage;
* memory-bound array operations as (calls, elements read + written), counted from
  :mod:`ringpipe.model.functional` and :mod:`ringpipe.model.blocks`: e.g. RMSNorm
  forward is 7 calls moving 9·T·h elements (x·x, mean, +ε, √, 1/, x·r, ·w), GeLU
  forward 9 calls over 22·T·f/t elements, the masked softmax 8 calls over 15·b·a·s²;
* transcendental elements (``tanh`` of GeLU, ``exp`` of the softmaxes): compute-bound;
* TP all-reduces (elements), 2 in F and 2 in I per transformer block (Megatron's g and
  f operators; 1 and 1 for an MLP block);
* the activations a forward keeps for its backward (:func:`held_elements`), which a
  step allocates anew (:mod:`ringpipe.cost.executable.predict` prices their first touch).

The counts are of this model's code as written; if a kernel there changes, its row here
changes with it. Pricing is elsewhere (:mod:`ringpipe.cost.executable.predict`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ringpipe.model.config import ModelConfig


@dataclass
class OpList:
    """What one pass executes: GEMMs (M, N, K, batch), memory ops (calls, elements),
    all-reduces (elements each)."""

    gemms: list[tuple[int, int, int, int]] = field(default_factory=list)
    mem: list[tuple[int, float]] = field(default_factory=list)
    allreduces: list[int] = field(default_factory=list)
    transcendental: float = 0.0

    def gemm(self, m: int, n: int, k: int, batch: int = 1) -> None:
        """Add a GEMM (and its one call)."""
        self.gemms.append((m, n, k, batch))

    def elementwise(self, calls: int, elements: float) -> None:
        """Add ``calls`` memory-bound calls moving ``elements`` in all."""
        self.mem.append((calls, float(elements)))

    def extend(self, other: OpList) -> None:
        """Append ``other``'s operations."""
        self.gemms += other.gemms
        self.mem += other.mem
        self.allreduces += other.allreduces
        self.transcendental += other.transcendental


@dataclass(frozen=True)
class PassOps:
    """A stage's three passes for one micro-batch on one TP rank, and the elements of
    the activations its forward keeps for the backward (:func:`held_elements`)."""

    forward: OpList
    backward_input: OpList
    backward_weight: OpList
    held: float = 0.0


def _norm(cfg: ModelConfig, rows: int, fwd: OpList, bwd: OpList, wgt: OpList) -> None:
    h = cfg.hidden
    layer = cfg.norm == "layernorm"
    fwd.elementwise(11 if layer else 7, (15 if layer else 9) * rows * h)
    bwd.elementwise(9 if layer else 7, (23 if layer else 19) * rows * h)
    wgt.elementwise(3 if layer else 2, (5 if layer else 4) * rows * h)


def _linear(rows: int, n_in: int, n_out: int, fwd: OpList, bwd: OpList, wgt: OpList,
            bias_in_forward: bool = True) -> None:
    """y = x·W + b: forward GEMM (+ bias), input gradient dy·Wᵀ, weight gradient xᵀ·dy
    and the bias's row sum; a gradient accumulation (+=) of W and b per micro-batch."""
    fwd.gemm(rows, n_out, n_in)
    if bias_in_forward:
        fwd.elementwise(1, 3 * rows * n_out)
    bwd.gemm(rows, n_in, n_out)
    wgt.gemm(n_in, n_out, rows)
    wgt.elementwise(3, rows * n_out + 3 * (n_in + 1) * n_out)


def _block(cfg: ModelConfig, tp: int, b: int, fwd: OpList, bwd: OpList, wgt: OpList) -> None:
    h, f, s = cfg.hidden, cfg.ffn, cfg.seq
    rows, ft = b * s, cfg.ffn // tp
    if cfg.has_attention:
        a, d = cfg.heads // tp, cfg.head_dim
        sq = b * a * s * s
        _norm(cfg, rows, fwd, bwd, wgt)
        _linear(rows, h, 3 * a * d, fwd, bwd, wgt)
        fwd.gemm(s, s, d, b * a)  # scores = q kᵀ
        fwd.gemm(s, d, s, b * a)  # ctx = P v
        fwd.elementwise(17, 15 * sq + 2 * s * s + 2 * rows * a * d)  # mask, softmax, views
        fwd.transcendental += sq  # exp
        bwd.gemm(s, d, s, b * a)  # dV = Pᵀ dC
        bwd.gemm(s, s, d, b * a)  # dP = dC Vᵀ
        bwd.gemm(s, d, s, b * a)  # dQ = dS K
        bwd.gemm(s, d, s, b * a)  # dK = dSᵀ Q
        bwd.elementwise(12, 12 * sq + 6 * rows * a * d)
        _linear(rows, a * d, h, fwd, bwd, wgt, bias_in_forward=False)
        fwd.allreduces.append(rows * h)
        bwd.allreduces.append(rows * h)
        fwd.elementwise(2, 6 * rows * h)  # bias after the reduction, residual
        bwd.elementwise(1, 3 * rows * h)  # residual
    _norm(cfg, rows, fwd, bwd, wgt)
    _linear(rows, h, ft, fwd, bwd, wgt)
    fwd.elementwise(9, 22 * rows * ft)  # GeLU (tanh form)
    fwd.transcendental += rows * ft  # tanh
    bwd.elementwise(13, 35 * rows * ft)
    _linear(rows, ft, h, fwd, bwd, wgt, bias_in_forward=False)
    fwd.allreduces.append(rows * h)
    bwd.allreduces.append(rows * h)
    fwd.elementwise(2, 6 * rows * h)
    bwd.elementwise(1, 3 * rows * h)
    del f


def held_elements(cfg: ModelConfig, tp: int, layers: int, last: bool, batch: int) -> float:
    """Elements one forward of a stage keeps until its backward, on one TP rank, counted
    from the caches of :mod:`ringpipe.model.blocks` (T = b·s rows, f = ffn/t, a = heads/t
    local heads of width d). Per transformer block: the two norms' x̂ and 1/rms (2·(T·h
    + T)), their outputs (2·T·h), qkv (3·T·a·d, q/k/v are views), the context (T·a·d),
    the attention probabilities (b·a·s²), and GeLU's input, tanh and output (3·T·f);
    an MLP block keeps one norm's and the GeLU's. The last stage also keeps its final
    norm (T·h + T), its output and the head's output and loss gradient (2·T·o, o = vocab
    or h; the output stays for the step's result)."""
    h, s = cfg.hidden, cfg.seq
    rows, ft = batch * s, cfg.ffn // tp
    per = rows * h + rows + rows * h + 3 * rows * ft
    if cfg.has_attention:
        a, d = cfg.heads // tp, cfg.head_dim
        per += 2 * rows * h + rows + 4 * rows * a * d + batch * a * s * s
    out = cfg.vocab or h
    return float(layers * per + (2 * rows * h + rows + 2 * rows * out if last else 0))


def stage_ops(cfg: ModelConfig, tp: int, layers: int, first: bool, last: bool,
              batch: int) -> PassOps:
    """F / I / W operations of a stage of ``layers`` blocks (module docstring)."""
    fwd, bwd, wgt = OpList(), OpList(), OpList()
    rows, h = batch * cfg.seq, cfg.hidden
    if first:
        if cfg.vocab:
            fwd.elementwise(1, 2 * rows * h)
            wgt.elementwise(2, 3 * cfg.vocab * h + 2 * rows * h)
        else:
            _linear(rows, h, h, fwd, OpList(), wgt)
    for _ in range(layers):
        _block(cfg, tp, batch, fwd, bwd, wgt)
    if last:
        out = cfg.vocab or h
        _norm(cfg, rows, fwd, bwd, wgt)
        _linear(rows, h, out, fwd, bwd, wgt)
        fwd.elementwise(10 if cfg.vocab else 6, 12 * rows * out)  # loss and its gradient
        fwd.transcendental += 2 * rows * out if cfg.vocab else 0  # exp of the softmax twice
    return PassOps(fwd, bwd, wgt, held_elements(cfg, tp, layers, last, batch))


def ops_calls(ops: OpList) -> int:
    """Array operations (calls) in ``ops``: one per GEMM, the memory ops' counts, and
    three per all-reduce (the layers' contiguity and aliasing checks)."""
    return len(ops.gemms) + sum(c for c, _ in ops.mem) + 3 * len(ops.allreduces)
