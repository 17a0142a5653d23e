"""MPI side of tests/runtime/test_mpi_device.py: ``python -m ringpipe.mpi verify --device cupy`` on
the emulated device (:mod:`emulated_gpu`), with a fake NCCL that records every call.

The fake NCCL keeps NCCL's contract: ``get_unique_id`` on one rank, the id broadcast by
the caller, ``NcclCommunicator(nranks, uid, rank)`` on every member; its ``allReduce``
sums in place through MPI on the memory behind the pointer it is given. Each rank
writes what it recorded (and whether every stage ran on device arrays) as JSON to
``$RINGPIPE_DEVICE_LOG.<world rank>``.
"""

from __future__ import annotations

import ctypes
import json
import os
import sys

import numpy as np
from emulated_device import DeviceArray
from emulated_gpu import emulated_gpu
from mpi4py import MPI

import ringpipe.cli.ranks.verify as mpi_verify
import ringpipe.runtime.mpi as runtime_mpi
import ringpipe.runtime.training as training
from ringpipe.cli.ranks.main import main
from ringpipe.runtime.device import DeviceSetup

WORLD = MPI.COMM_WORLD
RECORD = {"unique_ids": 0, "communicators": [], "allreduce": 0, "devices_used": [],
          "stages_on_device": True}


class FakeNccl:
    NCCL_FLOAT32, NCCL_FLOAT64, NCCL_SUM = "float32", "float64", "sum"
    NCCL_FLOAT16, NCCL_INT32, NCCL_INT64 = "float16", "int32", "int64"

    def __init__(self):
        self.issued = 0

    def get_unique_id(self):
        RECORD["unique_ids"] += 1
        self.issued += 1
        return (WORLD.Get_rank(), self.issued)  # unique across the world

    def NcclCommunicator(self, nranks, uid, rank):  # noqa: N802 - cupy's name
        RECORD["communicators"].append([nranks, list(uid), rank])
        return _FakeComm(nranks, uid, rank)


class _FakeComm:
    def __init__(self, nranks, uid, rank):
        # every world rank creates its groups' communicators in the same order, so a
        # world split coloured by the unique id forms exactly the group
        self.comm = WORLD.Split(uid[0] * 1000 + uid[1], rank)
        assert self.comm.Get_size() == nranks and self.comm.Get_rank() == rank

    def allReduce(self, send, recv, count, dtype, op, stream):  # noqa: N802
        assert send == recv and op == "sum" and stream == 0
        RECORD["allreduce"] += 1
        itemsize = np.dtype(dtype).itemsize
        raw = (ctypes.c_char * (count * itemsize)).from_address(recv)
        view = np.frombuffer(raw, dtype=dtype)
        view[...] = self.comm.allreduce(view.copy(), op=MPI.SUM)


def setup():
    return DeviceSetup(emulated_gpu(), lambda: 2, RECORD["devices_used"].append, lambda: 0,
                       FakeNccl())


real_forward = training.stage_forward
real_run = runtime_mpi.run_plan_mpi
IN_MPI_RUN = []  # non-empty while run_plan_mpi runs (rank 0 also runs plan.run on the host)


def spy(spec, shards, xs, *args, **kwargs):
    if IN_MPI_RUN:
        on_device = all(isinstance(v, DeviceArray) for s in shards for v in s.values())
        RECORD["stages_on_device"] &= on_device and all(isinstance(x, DeviceArray)
                                                        for x in xs)
    return real_forward(spec, shards, xs, *args, **kwargs)


def run_on_device(*args, **kwargs):
    IN_MPI_RUN.append(True)
    try:
        return real_run(*args, **kwargs)
    finally:
        IN_MPI_RUN.clear()


mpi_verify.device_setup = setup
training.stage_forward = spy
runtime_mpi.run_plan_mpi = run_on_device
rank = WORLD.Get_rank()  # main() finalizes MPI (its deadline covers MPI_Finalize)
status = main(sys.argv[1:])
with open(f"{os.environ['RINGPIPE_DEVICE_LOG']}.{rank}", "w") as log:
    json.dump(RECORD, log)
sys.exit(status)
