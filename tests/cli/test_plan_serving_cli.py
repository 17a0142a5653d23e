"""``ringpipe plan --inference --rate | --concurrency | --trace``: layouts ranked by goodput
under traffic, the winner explained, the static headers saying what the rows use."""

from __future__ import annotations

import json

import pytest

from ringpipe.cli import main

BASE = ["plan", "--inference", "--model", "llama3-8b", "--cluster", "dgx-h100",
        "--isl", "512", "--osl", "32"]
KEYS = [f"{m}_p{q}_s" for m in ("ttft", "itl", "e2e") for q in (50, 90, 99)] + [
    "throughput_tokens_per_s", "requests_per_s", "goodput_requests_per_s"]


def run(capsys, *argv):
    code = main([*BASE, *([] if "--trace" in argv else ["--requests", "40"]), *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_rate_ranks_by_goodput_with_every_percentile(capsys):
    code, out, err = run(capsys, "--rate", "20", "--ttft-slo-ms", "300", "--itl-slo-ms", "20",
                         "--tp", "2", "--json")
    assert code == 0 and not err
    doc = json.loads(out)
    assert doc["load"]["rate"] == 20 and doc["slo"]["percentile"] == 99
    goods = [c["goodput_requests_per_s"] for c in doc["candidates"]]
    assert goods == sorted(goods, reverse=True) and goods[0] > 0
    for c in doc["candidates"]:
        assert c["tp"] == 2 and all(key in c for key in KEYS)
        assert c["ttft_p50_s"] <= c["ttft_p90_s"] <= c["ttft_p99_s"]
    assert doc["best"] == doc["candidates"][0]
    assert "requests/s of goodput (p99 TTFT ≤ 300 ms and ITL ≤ 20 ms)" in doc["explanation"]


def test_concurrency_is_a_closed_loop_and_the_table_explains_the_winner(capsys):
    code, out, _ = run(capsys, "--concurrency", "8", "--pp", "1", "--percentile", "90")
    assert code == 0
    header, columns, *rows = out.split("\n\n")[0].splitlines()
    assert "concurrency 8 (40 requests)" in header and "SLO none" in header
    assert "ttft p50/p90 ms" in columns and "goodput req/s" in columns
    sentence = out.strip().splitlines()[-1]
    assert sentence.count(". ") == 0 and sentence.endswith(".") and " beats " in sentence


def test_a_trace_is_served(capsys, tmp_path):
    trace = tmp_path / "t.csv"
    trace.write_text("arrival_s,input_tokens,output_tokens\n" + "".join(
        f"{i * 0.05:.2f},{100 + 10 * i},{4 + i % 3}\n" for i in range(12)))
    code, out, _ = run(capsys, "--trace", str(trace), "--tp", "8", "--json")
    doc = json.loads(out)
    assert code == 0 and doc["load"]["trace"] == str(trace)
    assert doc["candidates"][0]["requests_per_s"] > 0


def test_plot_draws_latency_against_rate_in_the_suffix_format(capsys, tmp_path):
    path = tmp_path / "serve.svg"
    code, _, _ = run(capsys, "--rate", "10", "--tp", "8", "--ttft-slo-ms", "200",
                     "--plot", str(path))
    assert code == 0 and path.read_text().lstrip().startswith("<?xml")


def test_nothing_meets_an_impossible_slo(capsys):
    code, _, err = run(capsys, "--rate", "5", "--tp", "8", "--ttft-slo-ms", "0.5")
    assert code == 1 and "no layout fits and meets the SLOs at any rate" in err


@pytest.mark.parametrize("extra,message", [
    (["--rate", "2", "--concurrency", "4"], "give one of --rate, --concurrency and --trace"),
    (["--rate", "2", "--batch", "4"], "--batch does not apply with --rate"),
    (["--concurrency", "4", "--objective", "throughput"], "--objective does not apply"),
    (["--rate", "-1"], "--rate must be > 0"),
    (["--concurrency", "40"], "--concurrency must be in 1 .. --requests - 1 (39"),
    (["--percentile", "99"], "--percentile needs --rate, --concurrency or --trace"),
    (["--trace", "/nonexistent.csv"], "cannot read the trace"),
    (["--trace", "t.csv", "--requests", "3"], "--requests does not apply with --trace"),
])
def test_bad_traffic_flags_exit_2(capsys, extra, message):
    code, _, err = run(capsys, *extra)
    assert code == 2 and message in err and "Traceback" not in err


def test_static_headers_say_which_batch_the_rows_use(capsys):
    argv = ["plan", "--inference", "--model", "llama3-70b", "--cluster", "dgx-h100", "--top", "3"]
    assert main([*argv, "--batch", "64", "--objective", "throughput"]) == 0
    header, columns, first = capsys.readouterr().out.splitlines()[:3]
    assert "batch 64" not in header and "batch chosen per layout" in header
    assert int(first.split()[2]) != 64  # the row's own batch, as the header says
    assert main([*argv, "--objective", "throughput", "--ttft-slo-ms", "2000",
                 "--itl-slo-ms", "40"]) == 0
    assert "batch 1" not in capsys.readouterr().out.splitlines()[0]
    assert main([*argv, "--batch", "4", "--json"]) == 0
    best = json.loads(capsys.readouterr().out)["best"]
    assert best["itl_s"] == best["tpot_s"] and best["batch"] == 4
    assert best["requests_per_s"] == pytest.approx(4 / best["e2e_s"])
    assert best["e2e_s"] == pytest.approx(best["ttft_s"] + 127 * best["tpot_s"])
