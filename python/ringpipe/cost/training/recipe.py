"""The training recipe: the memory/time trade-offs a run switches on, as explicit options.

The default, :data:`MEGATRON`, is today's Megatron-LM (Megatron-Core) recipe for large
GPT/Llama models: tensor parallelism with **sequence parallelism** (Korthikanti et al.
2022, arXiv 2205.05198, §4.2.2: each TP all-reduce becomes a reduce-scatter plus an
all-gather and the layer-norm/dropout/residual activations are split t ways),
**flash attention** (Dao et al. 2022: the a·s² attention scores are never stored, and
the backward recomputes them), the **distributed optimizer** (ZeRO-1: fp32 master
weights, Adam moments — and, for fp16, the fp32 gradient copy — sharded over the DP
ranks; Megatron-LM ``docs/source/api-guide/dist_optimizer.md``), gradients reduced
in fp32 for bf16 (Megatron sets ``accumulate_allreduce_grads_in_fp32`` with ``--bf16``),
and the DP gradient reduce-scatter **overlapped with the backward** in buckets, the
parameter all-gather with the next forward (``--overlap-grad-reduce
--overlap-param-gather``).

Activation recomputation (``none`` / ``selective`` / ``full``, as Korthikanti et al.
define them) is the planner's to choose (lightest that fits) unless pinned in
:class:`ringpipe.cost.training.spec.TrainingSpec`.

:data:`SC21` is the recipe of Narayanan et al. SC'21 (the calibration table): no SP, no
flash attention, plain Adam replicated on every DP rank, the gradient all-reduce after
the pipeline drains.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Recipe:
    """Switches of the training recipe (module docstring). All default to Megatron's."""

    sequence_parallel: bool = True
    flash_attention: bool = True
    distributed_optimizer: bool = True
    overlap_grad_reduce: bool = True
    fp32_grads: bool = True

    def __post_init__(self) -> None:
        for name in ("sequence_parallel", "flash_attention", "distributed_optimizer",
                     "overlap_grad_reduce", "fp32_grads"):
            if not isinstance(getattr(self, name), bool):
                raise TypeError(f"Recipe.{name} must be a bool, got "
                                f"{type(getattr(self, name)).__name__}")

    def label(self) -> str:
        """Short form, e.g. ``sp+flash+distopt+overlap``."""
        parts = [n for n, on in (("sp", self.sequence_parallel),
                                 ("flash", self.flash_attention),
                                 ("distopt", self.distributed_optimizer),
                                 ("overlap", self.overlap_grad_reduce)) if on]
        return "+".join(parts) or "plain"

    def to_dict(self) -> dict[str, bool]:
        """The JSON form."""
        return {"sequence_parallel": self.sequence_parallel,
                "flash_attention": self.flash_attention,
                "distributed_optimizer": self.distributed_optimizer,
                "overlap_grad_reduce": self.overlap_grad_reduce,
                "fp32_grads": self.fp32_grads}


#: Today's Megatron-LM recipe (the default).
MEGATRON = Recipe()
#: Narayanan et al., SC'21 (fp16, no SP, no flash attention, no distributed optimizer).
SC21 = Recipe(sequence_parallel=False, flash_attention=False, distributed_optimizer=False,
              overlap_grad_reduce=False, fp32_grads=False)
