"""Mixture of experts: the configuration fields, the maths on one rank, the parallel block.

* :mod:`.shape`: the MoE fields of :class:`~ringpipe.model.config.ModelConfig` and their
  checks;
* :mod:`.maths`: router, SwiGLU experts, combine, auxiliary loss, and the single-device
  layer the reference model runs;
* :mod:`.block`: the expert-parallel block over a stage's ranks (dropless dispatch and
  combine through the EP all-to-all).

(Nothing is imported here: :mod:`ringpipe.model.config` reads :mod:`.shape` while it is
being defined.)
"""
