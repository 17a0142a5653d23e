"""MPI side of tests/runtime/test_runtime_parity.py: run every plan of a matrix on MPI ranks and
compare it, bit for bit and counter for counter, with the in-process run on rank 0.

Run as ``mpiexec -n N python parity_job.py CASES_JSON``; each case uses the first
dp·pp·cp·tp ranks of the world (the others wait). A case's ``mesh`` is ``[dp, pp, tp]``
or a dict of Mesh fields (cp, ep...). Rank 0 prints one JSON document.
"""

from __future__ import annotations

import json
import sys

from mpi4py import MPI

from ringpipe.mesh import Mesh
from ringpipe.model import ModelConfig, init_params
from ringpipe.mpi.guard import run_guarded
from ringpipe.plan.training import Plan
from ringpipe.runtime.mpi import run_plan_mpi
from ringpipe.verify import compare_runs, random_batch


def main() -> None:
    world = MPI.COMM_WORLD
    cases = json.loads(sys.argv[1])
    report = []
    for case in cases:
        given = case["mesh"]
        mesh = Mesh(**given) if isinstance(given, dict) else Mesh(*given)
        dp = mesh.dp
        cfg = ModelConfig(**case["model"])
        plan = Plan(cfg, mesh, schedule=case["schedule"],
                    microbatches=case["m"], allreduce=case["allreduce"],
                    chunks=case.get("chunks"), layout=case.get("layout"),
                    split=case.get("split", "even"))
        params = init_params(cfg, 7)
        batch = random_batch(cfg, dp * case["m"] * case["b"], 8)
        inside = world.Get_rank() < plan.mesh.world
        comm = world.Split(0 if inside else MPI.UNDEFINED, world.Get_rank())
        if inside:
            result = run_plan_mpi(plan, params, batch, comm)
            comm.Free()
            if world.Get_rank() == 0:
                diff = compare_runs(result, plan.run(params, batch, backend="numpy"))
                report.append({"case": case["name"], "bitwise": diff.bitwise,
                               "counters_equal": diff.counters_equal,
                               "describe": diff.describe(),
                               "peak": result.peak_activations,
                               "tp_ops": result.allreduce_ops("tp"),
                               "dp_ops": result.allreduce_ops("dp"),
                               "aux_loss": result.aux_loss,
                               "bytes": {g: sum(c.bytes_sent[g] for c in result.counters)
                                         for g in ("cp", "ep")}})
        world.Barrier()
    if world.Get_rank() == 0:
        print(json.dumps(report))


if __name__ == "__main__":
    run_guarded(main)
