"""What one pipeline stage is: blocks ``[first, last)`` of a model on a TP group.

:class:`StageSpec` is the immutable description the runtimes and
:mod:`ringpipe.model.stage` share: which layers, whether it holds the input layer
(``embedding``) and the final norm, head and loss (``head``), how many TP ranks,
whether the caller holds all of them or only its own (local-rank mode), and the
per-rank shard shapes of the stage's parameters (:func:`ringpipe.model.sharding.shard_shape`).

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

from ringpipe.model.config import ModelConfig
from ringpipe.model.params import input_param_shapes, layer_param_shapes, output_param_shapes
from ringpipe.model.sharding import shard_shape
from ringpipe.validation import check_int


@dataclass(frozen=True)
class StageSpec:
    """Blocks ``[first, last)`` of ``config`` on a TP group of ``tp`` ranks; with
    ``local=True`` the caller holds one of those ranks (lists of length 1)."""

    config: ModelConfig
    first: int
    last: int
    tp: int = 1
    local: bool = False
    embedding: bool | None = None
    head: bool | None = None
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

    @property
    def ranks_here(self) -> int:
        """Length of the per-rank lists: 1 in local-rank mode, else ``tp``."""
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
        return {n: shard_shape(s, n, self.tp) for n, s in full.items()}

    def select(self, shard: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """This stage's entries of a (whole-model) shard dict."""
        return {name: shard[name] for name in self.param_shapes()}
