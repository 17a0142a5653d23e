"""What one pipeline stage is: blocks ``[first, last)`` of a model on a TP group.

:class:`StageSpec` is the immutable description the runtimes and
:mod:`ringpipe.model.stage` share: which layers, whether it holds the input layer
(``embedding``) and the final norm, head and loss (``head``), how many TP ranks,
whether the caller holds all of them or only its own (local-rank mode), and the
per-rank shard shapes of the stage's parameters (:func:`ringpipe.model.sharding.shard_shape`).
With context parallelism (``cp``) each rank holds seq / cp positions
(:attr:`StageSpec.local_config`); with expert parallelism (``ep``) each holds E / ep of
every MoE layer's experts.

By default the first stage (``first == 0``) holds the input layer and the last
(``last == layers``) the head; a pipeline layout (:mod:`ringpipe.plan.layout`) passes
both flags explicitly, so that a stage may hold the embedding alone (``first == last
== 0``), the head alone (``first == last == layers``), or layer 0 without the
embedding (the stage after an embedding-only one).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import ClassVar

import numpy as np

from ringpipe.model.blocks.ring_attention import check_cp
from ringpipe.model.config import ModelConfig
from ringpipe.model.params import input_param_shapes, layer_param_shapes, output_param_shapes
from ringpipe.model.sharding import shard_shape
from ringpipe.validation import check_int


@dataclass(frozen=True)
class StageSpec:
    """Blocks ``[first, last)`` of ``config`` on a TP group of ``tp`` ranks; with
    ``local=True`` the caller holds one of those ranks (lists of length 1), with
    ``holds`` that many ranks (whole TP groups, of any CP ranks and replicas). ``cp`` and
    ``ep`` are the context- and expert-parallel sizes (module docstring)."""

    config: ModelConfig
    first: int
    last: int
    tp: int = 1
    local: bool = False
    embedding: bool | None = None
    head: bool | None = None
    cp: int = 1
    ep: int = 1
    holds: int | None = None
    #: Whether key/value heads may be replicated over tp > kv_heads (inference only).
    replicate_kv: ClassVar[bool] = False

    def __post_init__(self) -> None:
        if not isinstance(self.local, bool):
            raise TypeError(f"StageSpec.local must be a bool, got {type(self.local).__name__}")
        if not isinstance(self.config, ModelConfig):
            raise TypeError(f"StageSpec.config must be a ModelConfig, "
                            f"got {type(self.config).__name__}")
        for name in ("first", "last"):
            check_int(f"StageSpec.{name}", getattr(self, name), None)
        layers = self.config.layers
        for name, default in (("embedding", self.first == 0), ("head", self.last == layers)):
            value = getattr(self, name)
            if value is None:
                object.__setattr__(self, name, default)
            elif not isinstance(value, bool):
                raise TypeError(f"StageSpec.{name} must be a bool or None, got "
                                f"{type(value).__name__}")
        if not 0 <= self.first <= self.last <= layers:
            raise ValueError(f"StageSpec needs 0 <= first <= last <= layers={layers}, got "
                             f"first={self.first}, last={self.last}")
        if self.first == self.last and not (self.embedding or self.head):
            raise ValueError(f"StageSpec holds no layer (first == last == {self.first}) and "
                             "neither the embedding nor the head: it would do nothing")
        if self.embedding and self.first != 0:
            raise ValueError(f"StageSpec: the embedding feeds layer 0, but first={self.first}")
        if self.head and self.last != layers:
            raise ValueError(f"StageSpec: the head follows layer {layers - 1}, but "
                             f"last={self.last}")
        self.config.check_tp(self.tp, replicate_kv=self.replicate_kv)
        check_int("StageSpec.cp", self.cp, 1)
        if self.holds is not None:
            check_int("StageSpec.holds", self.holds, 1)
        check_int("StageSpec.ep", self.ep, 1)
        if self.cp > 1:
            check_cp(self.config.seq, self.cp)
        if self.config.experts % self.ep:
            raise ValueError(f"experts={self.config.experts} is not divisible by ep={self.ep}")

    @property
    def local_config(self) -> ModelConfig:
        """The config as one rank sees it: ``seq`` is the seq / cp positions it holds."""
        if self.cp == 1:
            return self.config
        return replace(self.config, seq=self.config.seq // self.cp)

    @property
    def ranks_here(self) -> int:
        """Length of the per-rank lists: ``holds`` when given (the in-process runtime
        holds every rank of a pipeline position), else 1 in local-rank mode, else tp."""
        if self.holds is not None:
            return self.holds
        return 1 if self.local else self.tp

    def local_view(self) -> StageSpec:
        """This stage in local-rank mode: one TP rank per process (see module docs)."""
        return replace(self, local=True)

    @property
    def is_first(self) -> bool:
        """Holds the input layer (embedding or in_proj): its input is the data."""
        return bool(self.embedding)

    @property
    def is_last(self) -> bool:
        """Holds the final norm, head and loss."""
        return bool(self.head)

    def param_shapes(self) -> dict[str, tuple[int, ...]]:
        """Names and per-rank shard shapes of this stage's parameters, forward order."""
        full = input_param_shapes(self.config) if self.is_first else {}
        for i in range(self.first, self.last):
            full.update(layer_param_shapes(self.config, i))
        if self.is_last:
            full.update(output_param_shapes(self.config))
        return {n: shard_shape(s, n, self.tp, self.ep) for n, s in full.items()}

    def select(self, shard: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """This stage's entries of a (whole-model) shard dict."""
        return {name: shard[name] for name in self.param_shapes()}
