"""The CP / EP / FP8 out-of-sample report: every published run is priced at its own
layout, and a few rows are checked against the numbers in the sources."""

import math

import pytest

from ringpipe.cost.published import parallel_runs
from ringpipe.cost.published.parallel_report import by_feature, check_runs, report


def test_rows_match_the_sources():
    (llama,) = parallel_runs.long_context_runs()
    assert (llama.mesh.tp, llama.mesh.cp, llama.mesh.pp, llama.mesh.dp) == (8, 16, 16, 8)
    assert llama.model.seq == 131072 and llama.tflops_per_gpu == 380
    nemo = parallel_runs.nemo_long_sequence_runs()
    assert [r.mesh.cp for r in nemo] == [1, 1, 1, 2, 2, 4, 8, 16, 32]
    assert nemo[-1].model.seq == 1024 * 1024 and nemo[-1].tflops_per_gpu == 536
    bridge = {r.label: r for r in parallel_runs.bridge_runs()}
    qwen = bridge["Qwen3_30B_a3B (25.11)"]
    assert (qwen.mesh.ep, qwen.mesh.etp, qwen.mesh.pp, qwen.chunks) == (8, 1, 2, 24)
    assert qwen.tokens_per_gpu_s == 5275 and qwen.placement == "megatron"
    deepseek = parallel_runs.deepseek_report_run()
    assert deepseek.tokens_per_gpu_s == pytest.approx(14.8e12 / (2664e3 * 3600))
    assert deepseek.cluster.intra.bandwidth == 160e9 and deepseek.mesh.ep == 64


@pytest.mark.slow  # ~10 s on 2 cores
def test_every_run_is_priced_and_the_report_says_how_well():
    tables = check_runs()
    checks = [c for rows in tables.values() for c in rows]
    assert len(checks) == 20
    for c in checks:
        assert c.prediction is not None, c.run.label  # every published layout fits
        assert math.isfinite(c.error) and c.error > -1
        m, p = c.run.mesh, c.prediction.config
        assert (p.tp, p.pp, p.dp, p.cp, p.ep) == (m.tp, m.pp, m.dp, m.cp, m.ep)
    text = report()
    assert text.count("MAE") == 6 and "All 20 runs" in text
    features = {name: (n, mae) for name, n, mae in by_feature(checks)}
    assert features["CP > 1"][0] == 10 and features["MoE with EP > 1"][0] == 4
    assert features["dense FP8"][0] == 15
    assert features["dense FP8 with a published step time (tokens/s)"][0] == 6
    ep = [abs(c.error) for c in checks if c.run.mesh.ep > 1]
    assert features["MoE with EP > 1"][1] == pytest.approx(sum(ep) / 4)
    assert f"CP > 1 {features['CP > 1'][1]:.1%} (10 runs)" in text
