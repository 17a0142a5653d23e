"""``ringpipe calibrate --backend cupy``'s phases: refuse anything but a real GPU, probe
the device (:mod:`.gpu`), with ``--np`` NCCL between GPUs (:mod:`.nccl_probe`), and
build the cluster file (:func:`.gpu.gpu_document` over the links and measured tables
that :func:`ringpipe.measure.nccltests.cluster_from_runs` fits to the NCCL runs, or over
the preset that the device's name suggests when no ``--np`` is given)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from ringpipe.cost.hardware.cluster import cluster_preset
from ringpipe.measure.calibrate.gpu import (
    device_facts,
    gpu_document,
    measure_device,
    real_gpu_or_refuse,
)
from ringpipe.measure.calibrate.nccl_probe import measure_nccl, runs_from_probe
from ringpipe.measure.nccltests.build import cluster_from_runs, preset_for_gpu
from ringpipe.measure.timer import FULL, QUICK

if TYPE_CHECKING:
    from ringpipe.measure.calibrate.run import CalibrateOptions

#: NCCL message sizes: 8 B to 1 GiB (64 MiB with --quick), x8 steps.
NCCL_SIZES = tuple(8 << (3 * i) for i in range(10))


def calibrate_gpu(options: CalibrateOptions) -> tuple[dict[str, Any], list[str]]:
    """Measure this GPU (and NCCL with ``options.nprocs``); the cluster-file dict and
    notes. ValueError (before measuring) when this is not a real GPU."""
    start = time.perf_counter()
    xp = real_gpu_or_refuse("ringpipe calibrate --backend cupy").xp
    facts = device_facts(xp)
    notes: list[str] = []
    measured = measure_device(xp, options.quick, QUICK if options.quick else FULL,
                              options.progress)
    notes.append("fp8 GEMMs not measured: they need cuBLASLt's scaled matmul, which CuPy "
                 "does not bind")
    base_name = preset_for_gpu(facts["name"])
    base = cluster_preset(base_name).to_dict()
    if options.nprocs is None:
        options.progress("[3/3] NCCL: skipped (no --np)")
        notes.append(f"no --np: links are preset {base_name}'s; measure them with --np N "
                     "(and --hostfile across nodes) or calibrate --from-nccl-tests")
    else:
        options.progress(f"[3/3] NCCL all-reduce, all-gather, send/recv on {options.nprocs} "
                         "GPUs")
        sizes = [s for s in NCCL_SIZES if not options.quick or s <= 64 << 20]
        doc, why = measure_nccl(options.nprocs, sizes, 5 if options.quick else 20,
                                options.hostfile)
        if doc is None:
            notes.append(str(why))
        else:
            built = cluster_from_runs(runs_from_probe(doc, "nccl probe"), base_name)
            base = built.document
            notes += list(built.notes)
            measured["nccl"] = [f.as_json() for f in built.fits]
    measured["seconds_taken"] = round(time.perf_counter() - start, 2)
    nccl = measured.pop("nccl", None)
    data = gpu_document(facts, measured, base)
    if nccl:
        notes += [f"NCCL {d['test']} on {d['ranks']} GPUs / {d['nodes']} node(s): busbw "
                  f"{d['busbw_gbs']:.1f} GB/s at {d['largest_bytes']} B" for d in nccl]
    return data, notes
