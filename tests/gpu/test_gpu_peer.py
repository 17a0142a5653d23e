"""``backend="cupy"`` with ranks on several devices: the peer-copy path (``cuda_peer``).

No machine here has two GPUs, so the devices are emulated (``emulated_device``): arrays
carry a device id, one operation never mixes devices, and the peer operations queue
work per device and run it only at barriers, device by device, in either order. The
schedule in :mod:`ringpipe.kernels.cuda.peer` must still give results bitwise equal to
``backend="numpy"``. The CuPy glue (``_CupyPeerOps``) needs two real GPUs:
``tests/gpu/test_gpu_device.py``.
"""

import numpy as np
import pytest
from emulated_device import DeviceArray, DeviceMismatch, to_device
from emulated_gpu import emulated_gpu

import ringpipe
import ringpipe.collectives.api
from ringpipe.kernels.cuda.peer import pair_table, run_table_peer
from ringpipe.kernels.cuda.tuning import MAX_RANKS
from ringpipe.kernels.registry import step_table

DTYPES = [np.float16, np.float32, np.float64, np.int32, np.int64]


@pytest.fixture(params=["forward", "reverse"])
def gpu(request, monkeypatch):
    device = emulated_gpu(request.param)
    monkeypatch.setattr(ringpipe.collectives.api, "gpu_arrays", lambda where: device)
    return device


def host_inputs(n, size, dtype, seed):
    rng = np.random.default_rng(seed)
    if np.dtype(dtype).kind == "f":
        xs = [rng.standard_normal(size).astype(dtype) for _ in range(n)]
        if size > 2:  # signed zeros and NaN: max/min must follow NumPy exactly
            xs[0][0], xs[-1][0] = 0.0, -0.0
            xs[n // 2][1] = np.nan
        return xs
    return [rng.integers(-50, 50, size).astype(dtype) for _ in range(n)]


def on_devices(xs, devices):
    return [to_device(x, d) for x, d in zip(xs, devices, strict=True)]


def host(arrays):
    return [a.host_view for a in arrays]


def same_bits(got, want):
    assert [g.tobytes() for g in got] == [w.tobytes() for w in want]


def one_per_device(n):
    return list(range(n))


@pytest.mark.parametrize("n", [2, 3, 5, 8])
@pytest.mark.parametrize("algorithm", ["ring", "tree"])
@pytest.mark.parametrize("op", ["sum", "max", "min"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_all_reduce_one_rank_per_device_is_bitwise_numpy(gpu, n, algorithm, op, dtype):
    for size in (0, 1, n - 1, 2 * n + 3, 61):
        xs = host_inputs(n, size, dtype, seed=size)
        want = ringpipe.all_reduce([x.copy() for x in xs], algorithm, "numpy", op)
        dev = on_devices(xs, one_per_device(n))
        got = ringpipe.all_reduce(dev, algorithm, "cupy", op)
        assert got is not None and all(g is d for g, d in zip(got, dev, strict=True))
        same_bits(host(dev), want)
        assert [d.device_id for d in dev] == one_per_device(n)
    assert gpu.launches == []  # never the single-device kernel


@pytest.mark.parametrize("collective,algorithm", [
    ("reduce_scatter", "ring"), ("all_gather", "ring"), ("broadcast", "ring"),
    ("broadcast", "tree"), ("reduce", "ring"), ("reduce", "tree")])
def test_other_collectives_in_place_and_out(gpu, collective, algorithm):
    n, size = 4, 23
    fn = getattr(ringpipe, collective)
    extra = {"root": 2} if collective in ("broadcast", "reduce") else {}
    xs = host_inputs(n, size, np.float64, seed=7)
    want = fn([x.copy() for x in xs], algorithm=algorithm, backend="numpy", **extra)
    dev = on_devices(xs, one_per_device(n))
    got = fn(dev, algorithm=algorithm, backend="cupy", **extra)
    same_bits(host(got), want)
    # out= : each rank's output on its own device, buffers untouched
    bounds = ringpipe.chunk_bounds(size, n)
    if collective == "reduce_scatter":
        outs = [np.zeros(bounds[r + 1] - bounds[r]) for r in range(n)]
    elif collective == "all_gather":
        outs = [np.zeros(n * size) for _ in range(n)]
    else:
        outs = [np.zeros(size) for _ in range(n)]
    want = fn([x.copy() for x in xs], algorithm=algorithm, backend="numpy",
              out=[o.copy() for o in outs], **extra)
    dev = on_devices(xs, one_per_device(n))
    dev_out = on_devices(outs, one_per_device(n))
    fn(dev, algorithm=algorithm, backend="cupy", out=dev_out, **extra)
    same_bits(host(dev_out), want)
    same_bits(host(dev), xs)


def test_ranks_sharing_devices_and_more_ranks_than_one_launch_takes(gpu):
    n = MAX_RANKS + 3  # too many for one kernel launch, fine across devices
    xs = host_inputs(n, 50, np.float32, seed=1)
    want = ringpipe.all_reduce([x.copy() for x in xs], "ring", "numpy")
    dev = on_devices(xs, [r % 3 for r in range(n)])
    ringpipe.all_reduce(dev, "ring", "cupy")
    same_bits(host(dev), want)


def test_a_missing_barrier_would_be_caught():
    """The device model is strict enough: without per-step barriers results change."""
    table = step_table("all_reduce", "ring", 4)
    xs = host_inputs(4, 40, np.float64, seed=3)
    want = ringpipe.all_reduce([x.copy() for x in xs], "ring", "numpy")

    class NoStepBarrier:
        def __init__(self, ops):
            self.ops = ops

        def __getattr__(self, name):
            return getattr(self.ops, name)

        def barrier(self, arrays):  # only the final one runs the queues
            pass

    ops = emulated_gpu("reverse").peer
    dev = on_devices(xs, one_per_device(4))
    run_table_peer(table, dev, "sum", NoStepBarrier(ops))
    ops.barrier(dev)
    assert [d.host_view.tobytes() for d in dev] != [w.tobytes() for w in want]
    dev = on_devices(xs, one_per_device(4))
    run_table_peer(table, dev, "sum", ops)
    same_bits(host(dev), want)
    assert ops.counts["barrier"] >= table.nsteps


def test_output_on_another_device_is_refused_before_anything_moves(gpu):
    xs = host_inputs(3, 9, np.float64, seed=0)
    dev = on_devices(xs, [0, 1, 2])
    outs = on_devices([np.zeros(9)] * 3, [0, 2, 2])
    with pytest.raises(ValueError, match=r"rank 1: out\[1\] is on device 2 but buffers\[1\] "
                                         "is on device 1"):
        ringpipe.all_reduce(dev, "ring", "cupy", out=outs)
    same_bits(host(dev), xs)
    assert all(not o.host_view.any() for o in outs)


def test_one_device_still_takes_the_fused_kernel(gpu):
    xs = host_inputs(4, 30, np.float32, seed=2)
    want = ringpipe.all_reduce([x.copy() for x in xs], "tree", "numpy")
    dev = on_devices(xs, [1, 1, 1, 1])
    ringpipe.all_reduce(dev, "tree", "cupy")
    same_bits(host(dev), want)
    assert gpu.launches == [("all_reduce", 4, 30)] and gpu.peer.counts["copy"] == 0
    with pytest.raises(ValueError, match=f"at most {MAX_RANKS} ranks per launch"):
        ringpipe.all_reduce(on_devices([np.zeros(2)] * (MAX_RANKS + 1), [0] * (MAX_RANKS + 1)),
                            "ring", "cupy")


def test_pair_table_and_device_model_refuse_cross_device_maths():
    assert len(pair_table()) == 1 and pair_table().nranks == 2
    a, b = to_device(np.ones(3), 0), to_device(np.ones(3), 1)
    with pytest.raises(DeviceMismatch):
        a + b
    assert isinstance(a + a, DeviceArray) and (a + a).device_id == 0


def test_work_pending_on_the_devices_is_drained_before_the_first_transfer(gpu):
    """The caller's last kernel on a device may still be queued when the collective
    starts; a peer copy on another device's stream would not wait for it."""
    n = 4
    xs = host_inputs(n, 37, np.float64, seed=9)
    want = ringpipe.all_reduce([x.copy() for x in xs], "ring", "numpy")
    dev = on_devices([np.zeros(37)] * n, one_per_device(n))
    for d, x in zip(dev, xs, strict=True):  # the inputs are still being written
        gpu.peer.copy(d, to_device(x, d.device_id))
    ringpipe.all_reduce(dev, "ring", "cupy")
    same_bits(host(dev), want)


def test_auto_algorithm_checks_placement_like_the_others(gpu):
    bufs = on_devices([np.zeros(2)] * (MAX_RANKS + 1), [0] * (MAX_RANKS + 1))
    with pytest.raises(ValueError, match=r"^all_reduce: buffers has 33 ranks on one device"):
        ringpipe.all_reduce(bufs, "auto", "cupy")
