"""The published-measurement files (``ringpipe/cost/published/data/``): each loads through
the one loader, names its source, and a malformed copy is refused with the file, line and
column named; a few rows are checked against the numbers in the sources."""

import dataclasses
import re
import shutil
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import pytest

from ringpipe.cost.published import (
    inference_tables,
    megatron,
    parallel_runs,
    serving_check,
    training_runs,
    zero_bubble,
)
from ringpipe.cost.published.loader import absent_as, data_files, load_table

ROW_TYPES = {
    "bloom_181b_splits.csv": training_runs.BloomSplit,
    "korthikanti_2022.csv": training_runs.KorthikantiRow,
    "llama3_405b.csv": training_runs.Llama3Row,
    "megatron_sc21_table1.csv": megatron.MegatronRow,
    "nemo_llama2_7b.csv": inference_tables.LatencyCsvRow,
    "nim_llama33_70b.csv": serving_check.NimServing,
    "vllm_latency.csv": inference_tables.LatencyCsvRow,
    "trtllm_first_token.csv": inference_tables.TrtllmFirstToken,
    "trtllm_throughput.csv": inference_tables.TrtllmThroughput,
    "llama3_405b_long_context.csv": training_runs.Llama3Row,
    "nemo_long_sequence.csv": parallel_runs.NemoLongSequenceRow,
    "megatron_bridge_h100.csv": parallel_runs.BridgeRow,
    "deepseek_v3_report.csv": parallel_runs.DeepSeekReportRow,
    "zero_bubble_2024.csv": zero_bubble.ZeroBubbleRow,
}


def _shipped(name):
    return resources.files("ringpipe.cost.published").joinpath("data").joinpath(name)


def test_every_data_file_has_a_row_type():
    assert set(data_files()) == set(ROW_TYPES)


@pytest.mark.parametrize("name", sorted(ROW_TYPES))
def test_every_file_loads_and_names_its_source(name):
    row_type = ROW_TYPES[name]
    table = load_table(name, row_type)
    assert table.rows and all(isinstance(r, row_type) for r in table.rows)
    source = table.source
    assert len(source.citation) > 40 and source.short and source.section
    assert source.url.startswith("https://")
    assert {c.name for c in table.columns} == {f.name for f in dataclasses.fields(row_type)}
    assert all(c.meaning for c in table.columns)
    assert all(c.unit for c in table.columns if c.name.endswith(("_s", "_ms", "tflops")))


def test_a_path_loads_like_the_resource_name(tmp_path):
    copy = tmp_path / "copy.csv"
    shutil.copyfile(_shipped("megatron_sc21_table1.csv"), copy)
    assert load_table(copy, megatron.MegatronRow).rows == megatron.TABLE_1


def test_the_modules_expose_the_files_rows():
    assert len(training_runs.BLOOM_SPLITS) == 21 and len(training_runs.KORTHIKANTI) == 8
    assert len(inference_tables.NEMO_LLAMA2_7B) == 32
    assert len(inference_tables.VLLM_LATENCY) == 6
    # vLLM build 9555 (8xH100): llama-3 70B tp4, mean latency 2444.47 ms
    assert inference_tables.VLLM_LATENCY[3] == inference_tables.LatencyRow(
        "llama3-70b", "dgx-h100", 4, 8, 32, 128, "bf16", 2.44447)
    nim = load_table("nim_llama33_70b.csv", serving_check.NimServing).rows
    assert [(r.concurrency, r.ttft_ms, r.itl_ms) for r in nim[:2]] == [
        (1, 406.77, 18.58), (5, 546.7, 21.83)]
    assert len(inference_tables.TRTLLM_THROUGHPUT) == len(inference_tables.TRTLLM_FIRST_TOKEN) == 8
    assert training_runs.BLOOM_SOURCE == load_table(
        "bloom_181b_splits.csv", training_runs.BloomSplit).source.short


def test_rows_agree_with_the_sources():
    # Narayanan et al., SC'21 (arXiv 2104.04473), Table 1: the 1.7B and 1T rows (heads,
    # hidden, layers, TP, PP, GPUs, batch, TFLOP/s per GPU); micro-batch 16 and 1 from
    # Megatron-LM examples/sc21/run_table_1.sh.
    rows = {r.name: r for r in megatron.TABLE_1}
    small, big = rows["1.7B"], rows["1008.0B"]
    assert (small.heads, small.hidden, small.layers, small.tp, small.pp, small.gpus,
            small.batch, small.microbatch, small.published_tflops) == (
        24, 2304, 24, 1, 1, 32, 512, 16, 137)
    assert (big.heads, big.hidden, big.layers, big.tp, big.pp, big.gpus, big.batch,
            big.microbatch, big.published_tflops) == (160, 25600, 128, 8, 64, 3072, 3072, 1, 163)
    # BigScience tr11-176B-ml chronicles-prequel.md, "GBS Variations" (2022-02-25): DP 8,
    # TP 4, PP 12, MBS 2, GBS 2048 ran twice, 110.48 and 113.54 Sec/it (the "Tweaking TP"
    # table); DP 48, TP 8, PP 1, MBS 1, GBS 2016 ran out of memory.
    runs = {(r.dp, r.tp, r.pp, r.microbatch, r.global_batch): r
            for r in training_runs.BLOOM_SPLITS if r.step_s != 113.54}
    assert runs[8, 4, 12, 2, 2048].step_s == 110.48
    assert [r.step_s for r in training_runs.BLOOM_SPLITS
            if (r.dp, r.tp, r.pp, r.microbatch) == (8, 4, 12, 2)] == [110.48, 113.54]
    assert runs[48, 8, 1, 1, 2016].step_s is None
    # Korthikanti et al. 2022 (arXiv 2205.05198), Tables 3-4: 530B, TP 8, PP 35, 280 GPUs,
    # 49.05 s per iteration with full recomputation, 37.83 s with the present work.
    kort = [(r.tp, r.pp, r.nodes * 8, r.recompute, r.step_s) for r in training_runs.KORTHIKANTI
            if r.model.name == "gpt-530b"]
    assert kort == [(8, 35, 280, "full", 49.05), (8, 35, 280, "selective", 37.83)]
    # Llama Team 2024 (arXiv 2407.21783), Table 4: 8,192 GPUs at TP 8, PP 16, DP 64 reach
    # 430 BF16 TFLOP/s per GPU; 16,384 GPUs at DP 128, 400.
    assert [(run.nodes * 8, run.tp, run.pp, run.dp, tflops)
            for run, tflops in training_runs.llama3_runs()] == [
        (8192, 8, 16, 64, 430), (16384, 8, 16, 128, 400)]
    # TensorRT-LLM docs/source/performance.md at commit 138f96d: H100 FP8, LLaMA 7B, batch
    # 768, TP 1, 128 in / 128 out: 19,694 out tok/s/GPU; A100 FP16, LLaMA 70B, batch 1,
    # TP 4, input 2048: first-token latency 377 ms.
    assert inference_tables.TRTLLM_THROUGHPUT[0] == inference_tables.ThroughputRow(
        "llama2-7b", "dgx-h100", 1, 768, 128, 128, "fp8", 19694)
    assert inference_tables.TRTLLM_FIRST_TOKEN[-1] == inference_tables.LatencyRow(
        "llama2-70b", "dgx-a100", 4, 1, 2048, 1, "bf16", 0.377)


@dataclass(frozen=True)
class Row:
    name: str
    gpus: int
    seconds: float | None = absent_as("OOM")


GOOD = """\
# citation: A. Author and B. Author, "A paper about step times", Some Venue, 2024
# short: Author and Author 2024, Table 1
# section: Table 1
#
# column name: a label
# column gpus: number of GPUs
# column seconds [s]: seconds per iteration; OOM when out of memory
name,gpus,seconds
a,8,1.5
b,16,OOM
"""


def test_a_good_file_loads(tmp_path):
    path = tmp_path / "good.csv"
    path.write_text(GOOD)
    table = load_table(path, Row)
    assert table.rows == (Row("a", 8, 1.5), Row("b", 16, None))
    assert table.columns[2].unit == "s" and table.source.section == "Table 1"


@pytest.mark.parametrize(("old", "new", "message"), [
    ("a,8,1.5", "a,8,nan", "line 9, column 'seconds': 'nan' is not a finite number"),
    ("a,8,1.5", "a,8,-inf", "line 9, column 'seconds': '-inf' is not a finite number"),
    ("a,8,1.5", "a,8,1e999", "line 9, column 'seconds': '1e999' is not a finite number"),
    ("a,8,1.5", "a,8,fast", "line 9, column 'seconds': 'fast' is not a number or 'OOM'"),
    ("b,16,OOM", "b,16,oom", "line 10, column 'seconds': 'oom' is not a number"),
    ("a,8,1.5", "a,8,", "line 9, column 'seconds': missing value"),
    ("a,8,1.5", "a,,1.5", "line 9, column 'gpus': missing value"),
    ("a,8,1.5", "a,8.0,1.5", "line 9, column 'gpus': '8.0' is not an integer"),
    ("a,8,1.5", "a, 8,1.5", "line 9, column 'gpus': ' 8' has surrounding spaces"),
    ("a,8,1.5", "a,8", "line 9: 2 values for 3 columns"),
    ("a,8,1.5", "a,8,1.5,9", "line 9: 4 values for 3 columns"),
    ("a,8,1.5\n", "a,8,1.5\n\n", "line 10: a blank line among the rows"),
    ("name,gpus,seconds", "name,gpus,seconds,extra", "line 8: unknown column 'extra'"),
    ("name,gpus,seconds", "name,seconds,seconds", "line 8: column 'seconds' given twice"),
    ("name,gpus,seconds\na,8,1.5\nb,16,OOM", "name,seconds\na,1.5\nb,OOM",
     "line 8: missing column(s) gpus"),
    ("# column gpus: number of GPUs\n", "", "column 'gpus' has no '# column' line"),
    ("# citation: A. Author and B. Author, \"A paper about step times\", Some Venue, 2024\n",
     "", "the metadata lacks citation"),
    ("# short:", "# shrot:", "line 2: unknown metadata key 'shrot'"),
    ("# section: Table 1", "# section Table 1", "line 3: expected '# key: value'"),
    ("\na,8,1.5\nb,16,OOM\n", "\n", "no rows after the header"),
])
def test_a_malformed_file_is_refused(tmp_path, old, new, message):
    assert old in GOOD
    path = tmp_path / "bad.csv"
    path.write_text(GOOD.replace(old, new, 1))
    with pytest.raises(ValueError, match="bad.csv") as info:
        load_table(path, Row)
    assert message in str(info.value)


def test_a_bad_copy_of_a_shipped_file_is_refused(tmp_path):
    text = _shipped("megatron_sc21_table1.csv").read_text(encoding="utf-8")
    bad = text.replace("\n1.7B,24,", "\n1.7B,twenty-four,")
    line = bad.splitlines().index(next(x for x in bad.splitlines() if "twenty" in x)) + 1
    path = tmp_path / "megatron_sc21_table1.csv"
    path.write_text(bad, encoding="utf-8")
    with pytest.raises(ValueError, match=rf"{re.escape(str(path))}: line {line}, column 'heads': "
                                         r"'twenty-four' is not an integer"):
        load_table(path, megatron.MegatronRow)


@pytest.mark.parametrize("name", ["nope.csv", "../data/nope.csv", "megatron_sc21_table1"])
def test_only_shipped_names_are_resources(name):
    with pytest.raises(ValueError, match="data file"):
        load_table(name, megatron.MegatronRow)


def test_rows_must_be_frozen_dataclasses(tmp_path):
    path = tmp_path / "good.csv"
    path.write_text(GOOD)

    @dataclass
    class Mutable:
        name: str
        gpus: int
        seconds: float

    with pytest.raises(TypeError, match="frozen dataclass"):
        load_table(path, Mutable)
    with pytest.raises(TypeError, match="frozen dataclass"):
        load_table(Path(path), tuple)


def test_zero_bubble_rows_match_the_paper():
    """Qi et al. 2024: Table 4 has 4 schedules × 12 cells, Table 8 3 × 12, Table 9 2 × 9;
    spot checks against the paper's numbers."""
    rows = zero_bubble.ROWS
    assert [sum(r.table == t for r in rows) for t in ("4", "8", "9")] == [48, 36, 18]
    first = next(r for r in rows if r.table == "4")
    assert (first.model, first.layers, first.heads, first.hidden, first.gpus, first.microbatch,
            first.microbatches, first.schedule, first.samples_per_gpu_s, first.memory_gb) == \
        ("1.5B", 22, 24, 2304, 8, 6, 24, "ZB-2p", 14.5, 59)
    last = [r for r in rows if r.table == "4"][-1]
    assert (last.model, last.microbatches, last.schedule, last.samples_per_gpu_s,
            last.memory_gb) == ("28.3B", 256, "1F1B-I", 0.9, 58)
    assert all((r.layers + 2) % r.gpus == 0 for r in rows)  # first and last one layer fewer
