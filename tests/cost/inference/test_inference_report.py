"""The inference accuracy tables of docs/inference.md
(``python -m ringpipe.cost.published.inference_report``):
every printed figure comes from the cost model and the cited tables."""

import re

import pytest

from ringpipe.cost.published.inference_report import (
    calibration_table,
    nemo_table,
    out_of_sample_table,
    rms,
    serving_table,
    worst,
)
from ringpipe.cost.published.inference_tables import (
    NEMO_LLAMA2_7B,
    TRTLLM_FIRST_TOKEN,
    TRTLLM_THROUGHPUT,
    VLLM_LATENCY,
    predictions,
    relative_errors,
)
from ringpipe.cost.published.serving_check import nim_rows


def _percent(text):
    return float(text.replace("−", "-").rstrip("%")) / 100


def test_rms_and_worst():
    assert rms([0.3, -0.4]) == pytest.approx(0.125 ** 0.5)
    assert worst([0.1, -0.3, 0.2]) == -0.3


def test_calibration_table_rows_are_the_model_predictions():
    text = calibration_table()
    rows = [line for line in text.splitlines() if line.startswith("| Llama")]
    errors = relative_errors(VLLM_LATENCY)
    assert len(rows) == len(VLLM_LATENCY) == 6
    for row, r, p, e in zip(rows, VLLM_LATENCY, predictions(VLLM_LATENCY), errors, strict=True):
        cells = [c.strip() for c in row.split("|")[1:-1]]
        assert cells[5] == f"{r.measured * 1e3:.1f} ms" and cells[6] == f"{p * 1e3:.1f} ms"
        assert _percent(cells[7]) == pytest.approx(e, abs=0.00051)
    head = re.search(r"RMS (\d+\.\d)%, worst ([+−]\d+\.\d%) \(6 rows\)", text)
    assert float(head.group(1)) == pytest.approx(rms(errors) * 100, abs=0.051)


@pytest.mark.slow
def test_serving_table_is_the_simulator_against_nim():
    checks = nim_rows()
    text = serving_table(checks)
    rows = [line for line in text.splitlines() if re.match(r"\| \d+ \|", line)]
    assert len(rows) == len(checks) == 8
    for row, c in zip(rows, checks, strict=True):
        cells = [x.strip() for x in row.split("|")[1:-1]]
        assert cells[2] == f"{c.ttft_s * 1e3:.0f} ms" and cells[5] == f"{c.itl_s * 1e3:.1f} ms"
    itl = [(c.itl_s * 1e3 - c.row.itl_ms) / c.row.itl_ms for c in checks]
    assert f"ITL: RMS {rms(itl) * 100:.1f}%" in text and max(map(abs, itl)) < 0.08


def test_nemo_table_cells_are_the_model_predictions():
    text = nemo_table()
    cells = re.findall(r"(\d+\.\d) → (\d+\.\d) \(([+−]\d+\.\d%)\)", text)
    assert len(cells) == len(NEMO_LLAMA2_7B) == 32
    measured = sorted(round(r.measured * 1e3, 1) for r in NEMO_LLAMA2_7B)
    assert sorted(float(m) for m, _, _ in cells) == measured
    predicted = sorted(round(p * 1e3, 1) for p in predictions(NEMO_LLAMA2_7B))
    assert sorted(float(p) for _, p, _ in cells) == predicted
    for m, p, e in cells:
        assert _percent(e) == pytest.approx(float(p) / float(m) - 1, abs=0.0011)
    errors = relative_errors(NEMO_LLAMA2_7B)
    head = re.search(r"RMS (\d+\.\d)%, worst ([+−]\d+\.\d%) \(32 rows\)", text)
    assert float(head.group(1)) == pytest.approx(rms(errors) * 100, abs=0.051)
    assert _percent(head.group(2)) == pytest.approx(worst(errors), abs=0.00051)


def test_out_of_sample_table_rows_and_summaries():
    text = out_of_sample_table()
    rows = [line for line in text.splitlines() if line.startswith("| Llama")]
    assert len(rows) == len(TRTLLM_FIRST_TOKEN) + len(TRTLLM_THROUGHPUT) == 16
    errors = relative_errors(TRTLLM_FIRST_TOKEN)
    first = re.search(r"first-token latency: RMS (\d+\.\d)%", text)
    assert float(first.group(1)) == pytest.approx(rms(errors) * 100, abs=0.051)
    assert [_percent(row.split("|")[-2].strip()) for row in rows[:8]] == pytest.approx(
        errors, abs=0.00051)
    assert "throughput, Llama-2-7B rows: RMS" in text
