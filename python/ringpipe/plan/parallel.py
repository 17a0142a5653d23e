"""What context and expert parallelism ask of a model before a plan is built.

* **CP**: the sequence is cut into 2·cp equal chunks (:mod:`ringpipe.model.blocks.ring_attention`),
  so 2·cp must divide it;
* **EP**: experts are split over the ep ranks, so the model must be a MoE model and ep
  must divide its experts; the NumPy model runs a MoE layer's experts TP-split over the
  same TP group as the dense layers (Megatron's default ``expert_tensor_parallel_size``
  = tp): a different etp is priced (:mod:`ringpipe.cost.training`), not executed.
"""

from __future__ import annotations

from ringpipe.mesh import Mesh
from ringpipe.model.blocks.ring_attention import check_cp
from ringpipe.model.config import ModelConfig

__all__ = ["check_parallel_model"]


def check_parallel_model(config: ModelConfig, mesh: Mesh) -> None:
    """ValueError naming the problem unless ``config`` runs on ``mesh``'s cp and ep."""
    if mesh.cp > 1:
        if not config.has_attention:
            raise ValueError(f"cp={mesh.cp} needs attention layers to split the sequence "
                             "for (block='mlp' has none; use dp instead)")
        check_cp(config.seq, mesh.cp)
    if mesh.ep > 1 and not config.is_moe:
        raise ValueError(f"ep={mesh.ep} needs a mixture-of-experts model (experts > 0)")
    if config.experts % mesh.ep:
        raise ValueError(f"ep={mesh.ep} does not divide the {config.experts} experts")
    if mesh.etp != mesh.tp:
        raise ValueError(f"etp={mesh.etp}: the NumPy model runs experts TP-split like the "
                         f"dense layers (etp = tp = {mesh.tp}); other etp are priced only")
