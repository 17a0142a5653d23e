"""Checks of the model's inputs and loss targets, before any rank touches them.

Token ids (``vocab > 0``): an integer ``(batch, seq)`` array with values in [0, vocab);
dense inputs (``vocab == 0``): a real ``(batch, seq, hidden)`` array, cast to the
model's dtype. NumPy arrays, or with ``device_ok`` device (CuPy) arrays, which stay
where they are.
"""

from __future__ import annotations

import numpy as np

from ringpipe.arrays import array_module, is_array
from ringpipe.model.config import ModelConfig

__all__ = ["check_batch", "check_targets"]


def check_batch(config: ModelConfig, batch: object, name: str = "batch", *,
                device_ok: bool = False) -> np.ndarray:
    """Validate a model input and return it as an array of the compute dtype.

    Token ids (vocab > 0): an integer ``(batch, seq)`` array with values in [0, vocab).
    Dense (vocab == 0): a real ``(batch, seq, hidden)`` array, cast to ``config.dtype``.
    A NumPy array, or with ``device_ok`` also a device (CuPy) array, which stays there.
    """
    if not (is_array(batch) if device_ok else isinstance(batch, np.ndarray)):
        kind = "an array (numpy, or cupy on a GPU)" if device_ok else "a numpy array"
        raise TypeError(f"{name} must be {kind}, got {type(batch).__name__}")
    if config.vocab:
        if batch.ndim != 2 or batch.shape[1] != config.seq or batch.shape[0] < 1:
            raise ValueError(f"{name} must have shape (batch, seq={config.seq}) of token ids, "
                             f"got {batch.shape}")
        if not np.issubdtype(batch.dtype, np.integer):
            raise TypeError(f"{name} must hold integer token ids, got dtype {batch.dtype}")
        # one comparison, read once (on a GPU every read of a result is a sync)
        if batch.size and bool((batch.min() < 0) | (batch.max() >= config.vocab)):
            raise ValueError(f"{name} token ids must lie in [0, vocab={config.vocab})")
        return batch
    want = (config.seq, config.hidden)
    if batch.ndim != 3 or batch.shape[1:] != want or batch.shape[0] < 1:
        raise ValueError(f"{name} must have shape (batch, seq={config.seq}, "
                         f"hidden={config.hidden}), got {batch.shape}")
    if not np.issubdtype(batch.dtype, np.floating):
        raise TypeError(f"{name} must be a float array, got dtype {batch.dtype}")
    return array_module(batch).ascontiguousarray(batch, dtype=config.np_dtype)


def check_targets(config: ModelConfig, targets: object, batch_size: int, *,
                  device_ok: bool = False) -> np.ndarray:
    """Validate loss targets for a batch of ``batch_size`` sequences.

    Cross-entropy (vocab > 0): integer class ids ``(batch, seq)`` in [0, vocab).
    MSE (vocab == 0): a real ``(batch, seq, hidden)`` array, cast to ``config.dtype``.
    """
    arr = check_batch(config, targets, "targets", device_ok=device_ok)
    if arr.shape[0] != batch_size:
        raise ValueError(f"targets has batch size {arr.shape[0]} but the input has {batch_size}")
    return arr
