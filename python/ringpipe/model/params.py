"""Parameter names, shapes, deterministic initialisation and checks.

Every linear layer stores ``weight`` as (in, out) and computes ``y = x @ weight + bias``.

Names (``{i}`` is the layer index; ``norm*`` has ``.bias`` only for layernorm)::

    embed.weight                    (vocab, hidden)        vocab > 0
    in_proj.weight, in_proj.bias    (hidden, hidden), (hidden,)   vocab == 0
    layers.{i}.norm1.weight/.bias   (hidden,)              transformer block only
    layers.{i}.attn.qkv.weight      (hidden, qkv)          transformer block only
    layers.{i}.attn.qkv.bias        (qkv,)                 qkv = (heads + 2 kv_heads) d
    layers.{i}.attn.out.weight      (hidden, hidden)
    layers.{i}.attn.out.bias        (hidden,)
    layers.{i}.norm2.weight/.bias   (hidden,)
    layers.{i}.mlp.gate.weight/.bias (hidden, ffn), (ffn,)  gated_mlp (SwiGLU) only
    layers.{i}.mlp.fc1.weight/.bias (hidden, ffn), (ffn,)   (the "up" projection if gated)
    layers.{i}.mlp.fc2.weight/.bias (ffn, hidden), (hidden,)

A MoE layer (``config.is_moe_layer(i)``, :mod:`ringpipe.model.moe.shape`) has instead of
``mlp.*`` (E experts of width f_e = moe_ffn, S shared experts; no biases)::

    layers.{i}.moe.router.weight          (hidden, E)
    layers.{i}.moe.experts.gate.weight    (E, hidden, f_e)
    layers.{i}.moe.experts.up.weight      (E, hidden, f_e)
    layers.{i}.moe.experts.down.weight    (E, f_e, hidden)
    layers.{i}.moe.shared.gate.weight     (hidden, S·f_e)     S > 0 only
    layers.{i}.moe.shared.up.weight       (hidden, S·f_e)
    layers.{i}.moe.shared.down.weight     (S·f_e, hidden)
    final_norm.weight/.bias         (hidden,)
    head.weight, head.bias          (hidden, vocab or hidden), (vocab or hidden,)

**QKV column layout (head-major, Megatron's).** Column ``j`` of ``attn.qkv.weight`` is
``j = head * 3*d + part * d + c`` with ``part`` 0 = query, 1 = key, 2 = value and
``c`` in [0, d), d = hidden / heads. Each head's [q | k | v] columns are adjacent, so
the contiguous column block ``[t*3h/T, (t+1)*3h/T)`` is exactly heads
``[t*a/T, (t+1)*a/T)`` -- whole heads for tensor-parallel rank t of T. Likewise
``attn.out.weight`` row ``head * d + c`` belongs to that head (the attention context
is laid out head-major), so its contiguous row blocks match.

**Grouped-query attention** (``kv_heads`` < ``heads``, r = heads / kv_heads): the
columns are grouped by key/value head, ``[q_{gr} .. q_{gr+r-1} | k_g | v_g]`` for group
g, i.e. column ``g * (r+2)*d + part * d + c`` with ``part`` < r a query head of the
group, r its key and r+1 its value. With r = 1 this is the layout above; a contiguous
block of kv_heads/T groups is whole groups for tp rank t when T divides kv_heads.
"""

from __future__ import annotations

import math

import numpy as np

from ringpipe.arrays import array_kind, array_module, is_array
from ringpipe.model.config import ModelConfig
from ringpipe.validation import check_int


def _norm_names(config: ModelConfig, prefix: str) -> list[str]:
    names = [f"{prefix}.weight"]
    if config.norm == "layernorm":
        names.append(f"{prefix}.bias")
    return names


def input_param_shapes(config: ModelConfig) -> dict[str, tuple[int, ...]]:
    """Parameters of the input layer (held by the first pipeline stage)."""
    h = config.hidden
    if config.vocab:
        return {"embed.weight": (config.vocab, h)}
    return {"in_proj.weight": (h, h), "in_proj.bias": (h,)}


def layer_param_shapes(config: ModelConfig, i: int) -> dict[str, tuple[int, ...]]:
    """Parameters of block ``i``, in forward order."""
    h, f, p = config.hidden, config.ffn, f"layers.{i}"
    assert f is not None
    shapes: dict[str, tuple[int, ...]] = {}
    if config.has_attention:
        shapes.update({n: (h,) for n in _norm_names(config, f"{p}.norm1")})
        shapes[f"{p}.attn.qkv.weight"] = (h, config.qkv_width)
        shapes[f"{p}.attn.qkv.bias"] = (config.qkv_width,)
        shapes[f"{p}.attn.out.weight"] = (config.attn_width, h)
        shapes[f"{p}.attn.out.bias"] = (h,)
    shapes.update({n: (h,) for n in _norm_names(config, f"{p}.norm2")})
    if config.is_moe_layer(i):
        shapes.update(moe_param_shapes(config, p))
        return shapes
    if config.gated_mlp:
        shapes[f"{p}.mlp.gate.weight"] = (h, f)
        shapes[f"{p}.mlp.gate.bias"] = (f,)
    shapes[f"{p}.mlp.fc1.weight"] = (h, f)
    shapes[f"{p}.mlp.fc1.bias"] = (f,)
    shapes[f"{p}.mlp.fc2.weight"] = (f, h)
    shapes[f"{p}.mlp.fc2.bias"] = (h,)
    return shapes


def moe_param_shapes(config: ModelConfig, prefix: str) -> dict[str, tuple[int, ...]]:
    """The MoE block of a layer (module docstring), names under ``prefix``."""
    h, e, fe = config.hidden, config.experts, config.moe_ffn
    assert fe is not None
    shapes = {f"{prefix}.moe.router.weight": (h, e),
              f"{prefix}.moe.experts.gate.weight": (e, h, fe),
              f"{prefix}.moe.experts.up.weight": (e, h, fe),
              f"{prefix}.moe.experts.down.weight": (e, fe, h)}
    if config.shared_experts:
        fs = config.shared_experts * fe
        shapes.update({f"{prefix}.moe.shared.gate.weight": (h, fs),
                       f"{prefix}.moe.shared.up.weight": (h, fs),
                       f"{prefix}.moe.shared.down.weight": (fs, h)})
    return shapes


def output_param_shapes(config: ModelConfig) -> dict[str, tuple[int, ...]]:
    """Parameters of the final norm and head (held by the last pipeline stage)."""
    h = config.hidden
    out = config.vocab or h
    shapes = {n: (h,) for n in _norm_names(config, "final_norm")}
    shapes.update({"head.weight": (h, out), "head.bias": (out,)})
    return shapes


def param_shapes(config: ModelConfig) -> dict[str, tuple[int, ...]]:
    """All parameters' full (unsharded) shapes, in forward order (ValueError for an
    architecture the NumPy model does not build: :meth:`ModelConfig.check_executable`)."""
    config.check_executable("param_shapes")
    shapes = input_param_shapes(config)
    for i in range(config.layers):
        shapes.update(layer_param_shapes(config, i))
    shapes.update(output_param_shapes(config))
    return shapes


def _init_std(config: ModelConfig, name: str, shape: tuple[int, ...]) -> float:
    if name == "embed.weight":
        return 1.0
    if len(shape) >= 2:
        std = 1.0 / math.sqrt(shape[-2])  # LeCun: unit-variance outputs for unit inputs
        if name.endswith(("attn.out.weight", "mlp.fc2.weight", "down.weight")):
            std /= math.sqrt(2 * config.layers)  # GPT-2's residual-branch scaling
        return std
    return 0.02


def init_params(config: ModelConfig, seed: int) -> dict[str, np.ndarray]:
    """Deterministic parameters: the same ``(config, seed)`` gives the same arrays.

    Values are drawn in float64 from ``numpy.random.default_rng(seed)`` in the order of
    :func:`param_shapes`, then cast to ``config.dtype`` (so a float32 model holds the
    rounded float64 one). Matrices ~ N(0, 1/fan_in) (output projections further scaled
    by 1/sqrt(2*layers), as GPT-2), embeddings ~ N(0, 1), biases ~ N(0, 0.02^2) and norm
    weights ~ 1 + N(0, 0.02^2): small but non-zero, so every parameter's gradient path
    is exercised by tests while activations stay O(1) and float32 stays well-conditioned.
    """
    check_int("seed", seed, None)
    rng = np.random.default_rng(seed)
    params: dict[str, np.ndarray] = {}
    for name, shape in param_shapes(config).items():
        value = rng.standard_normal(shape) * _init_std(config, name, shape)
        if ".norm" in name or name.startswith("final_norm"):
            if name.endswith(".weight"):
                value = value + 1.0
        params[name] = np.ascontiguousarray(value, dtype=config.np_dtype)
    return params


def check_arrays(where: str, arrays: object, shapes: dict[str, tuple[int, ...]],
                 dtype: np.dtype, *, exact: bool = True, device_ok: bool = False) -> None:
    """Raise unless ``arrays`` maps every name in ``shapes`` to an array of that shape
    and dtype (and, with ``exact``, holds no other names). NumPy arrays, or with
    ``device_ok`` arrays of any one module (all NumPy, or all CuPy)."""
    if not isinstance(arrays, dict):
        raise TypeError(f"{where} must be a dict of arrays, got {type(arrays).__name__}")
    missing = [n for n in shapes if n not in arrays]
    if missing:
        raise ValueError(f"{where} is missing {missing[:4]}{'...' if len(missing) > 4 else ''}")
    if exact:
        extra = sorted(set(arrays) - set(shapes))
        if extra:
            raise ValueError(f"{where} has unknown parameters {extra[:4]}")
    xp = None
    for name, shape in shapes.items():
        value = arrays[name]
        if device_ok and is_array(value):
            xp = array_module(value) if xp is None else xp
            if array_module(value) is not xp:
                raise TypeError(f"{where}[{name!r}] is a {array_kind(value)} but earlier "
                                f"entries are {xp.__name__} arrays; keep a shard on one device")
        elif not isinstance(value, np.ndarray):
            raise TypeError(f"{where}[{name!r}] must be a numpy array, "
                            f"got {type(value).__name__}")
        if value.shape != shape:
            raise ValueError(f"{where}[{name!r}] has shape {value.shape}, expected {shape}")
        if value.dtype != dtype:
            raise TypeError(f"{where}[{name!r}] has dtype {value.dtype}, expected {dtype}")


def check_params(config: ModelConfig, params: object) -> None:
    """Raise unless ``params`` holds exactly the model's parameters, shapes and dtype."""
    check_arrays("params", params, param_shapes(config), config.np_dtype)
