"""The human summary ``ringpipe calibrate`` prints: FLOP/s, bandwidth, α-β per link."""

from __future__ import annotations

from typing import Any


def summary(data: dict[str, Any], notes: list[str]) -> str:
    """A few lines on what was measured in the cluster-file dict ``data``."""
    m = data["measured"]
    lines = [f"# ringpipe calibrate: {m['host'] or 'this host'}, {m['cores']} cores, "
             f"{m['blas_threads']} BLAS thread(s), backend {m['backend']}, "
             + (f"{data['name']}, " if m.get("backend") == "cupy" else "") +
             f"{m['seconds_taken']:.1f} s"]
    for dtype, g in m["gemm"].items():
        lines.append(f"GEMM {dtype:8s} peak (fitted asymptote) {g['peak_gflops']:8.2f} GFLOP/s,"
                     f" best achieved {g['best_gflops']:8.2f} GFLOP/s; half-rate sizes "
                     f"M0={g['m0']:.1f} N0={g['n0']:.1f} K0={g['k0']:.1f}")
    if m.get("backend") == "cupy":
        lines.append(f"HBM bandwidth (copy) {m['memory_bandwidth_gbs']:.1f} GB/s; kernel "
                     f"launch {m['call_overhead_us']:.2f} us; links: intra-node "
                     f"{data['intra_node']['bandwidth_gbs']:.4g} GB/s, "
                     f"{data['intra_node']['latency_us']:.3g} us; inter-node "
                     f"{data['inter_node']['bandwidth_gbs']:.4g} GB/s, "
                     f"{data['inter_node']['latency_us']:.3g} us")
        return "\n".join(lines + [f"note: {n}" for n in notes])
    lines.append(f"memory bandwidth (all-core copy) {m['memory_bandwidth_gbs']:.2f} GB/s; "
                 f"per-call overhead {m['call_overhead_us']:.2f} us; tanh/exp "
                 f"{m['transcendental_ns']:.1f} ns per element"
                 + (f"; interpreter {m['action_overhead_us']:.1f} us per action"
                    if "action_overhead_us" in m else "")
                 + (f"; fresh memory {m['fresh_memory_ns_per_byte'] * 4096 / 1e3:.2f} us "
                    "per 4 KiB page" if "fresh_memory_ns_per_byte" in m else "")
                 + (f"; bookkeeping {m['tensor_overhead_us']:.1f} us per tensor, "
                    f"{m['copy_bandwidth_gbs']:.1f} GB/s" if "copy_bandwidth_gbs" in m else ""))
    sh = m.get("cpu_share", {})
    lines.append(f"CPU share of a busy thread: in-process {sh.get('inproc', 1.0):.2f}" + (
        f", the least-served of {sh['mpi_processes']} MPI ranks {sh['mpi']:.2f}" if "mpi" in sh
        else ""))
    lines.append(f"{'link':34s} {'alpha (us)':>11s} {'bandwidth (GB/s)':>17s}")
    for runtime, row in m["p2p"].items():
        lines.append(f"{'p2p ' + runtime:34s} {row['latency_us']:11.2f} "
                     f"{row['bandwidth_gbs']:17.3f}")
    for row in m["allreduce"]:
        name = f"all-reduce {row['runtime']} {row['algorithm']} N={row['ranks']}"
        lines.append(f"{name:34s} {row['fit_alpha_us']:11.2f} "
                     f"{1 / max(row['fit_beta_ns_per_byte'], 1e-12):17.3f}"
                     f"   (per step: {row['latency_us']:.2f} us, "
                     f"{row['bandwidth_gbs']:.3f} GB/s)")
    lines += [f"note: {n}" for n in notes]
    return "\n".join(lines)
