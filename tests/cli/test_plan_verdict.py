"""``ringpipe plan`` opens with a verdict: the decision, the runner-up of another kind,
the assumptions, a tie when the margin is inside the out-of-sample error; and the
bubble column is explained."""

import json

import pytest

from ringpipe.cli import main
from ringpipe.cli.plan.verdict import Verdict, bubble_note, kind
from ringpipe.cost.hardware.cluster import cluster_preset
from ringpipe.cost.published.accuracy import OUT_OF_SAMPLE_STEP_ERROR
from ringpipe.cost.training.search import SearchSpace, search
from ringpipe.cost.training.spec import TrainingSpec
from ringpipe.model.presets import model_preset

SEED = ["plan", "--model", "llama3-70b", "--cluster", "dgx-h100", "--nodes", "4",
        "--global-batch", "512"]


def _report(model, cluster, nodes, batch):
    return search(model_preset(model), TrainingSpec(batch), cluster_preset(cluster, nodes))


def test_seed_example_is_a_tie_and_says_what_to_measure(capsys):
    assert main([*SEED, "--top", "3"]) == 0
    out = capsys.readouterr().out
    assert max(len(line) for line in out.split("\n\n")[0].splitlines()) <= 100  # wrapped
    lines = out.split("\n\n")[0].replace("\n  ", " ").splitlines()
    assert lines[0] == ("Verdict: TP=2 inside each node, CP=2 inside each node, PP=8 across "
                        "nodes (1F1B, balanced split 8/10/10/11/11/11/10/9 layers); 129 s/step, "
                        "49.6% MFU (micro-batch 1, recomputation selective).")
    assert lines[1].startswith("Runner-up of another kind (TP-heavy): TP=8 inside each node, "
                               "PP=2 across nodes, DP=2 across nodes (ZB-V, 2 stages per rank)")
    assert "the winner is 8.2% faster, mainly through tensor-parallel communication" in lines[1]
    assert lines[2].startswith("Assumed: sequence 8192, bf16, global batch 512; per GPU, each "
                               "way, 450 GB/s inside a node and 50 GB/s across nodes")
    assert "CP crosses intra-node links at 450 GB/s, PP crosses inter-node links at 50 GB/s" \
        in lines[2]
    assert lines[3].startswith(f"A tie: 8.2% is less than the planner's "
                               f"{OUT_OF_SAMPLE_STEP_ERROR:.1%} out-of-sample step-time error")
    assert "python -m ringpipe.cost.validate" in lines[3]
    assert "nccl-tests sendrecv_perf" in lines[3]  # what would break it
    assert "nccl-tests all_reduce_perf" in lines[3]


def test_a_clear_winner_is_not_called_a_tie():
    verdict = Verdict(_report("llama2-70b", "pcie-a100", 4, 256))
    assert verdict.margin > OUT_OF_SAMPLE_STEP_ERROR and not verdict.tie
    assert not any(line.startswith("A tie") for line in verdict.lines())
    assert {kind(verdict.best), kind(verdict.other)} == {"TP-heavy", "PP-heavy"}


def test_tie_follows_the_tolerance():
    report = _report("llama3-70b", "dgx-h100", 4, 512)
    assert Verdict(report).tie
    strict = Verdict(report, tolerance=0.01)
    assert not strict.tie and strict.margin == pytest.approx(0.082, abs=0.001)


def test_json_carries_the_verdict_and_each_candidates_assumptions(capsys):
    assert main([*SEED, "--top", "2", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    v = doc["verdict"]
    assert v["tie"] is True and v["tie_tolerance"] == OUT_OF_SAMPLE_STEP_ERROR
    assert (v["runner_up_other_kind"]["tp"], v["runner_up_other_kind"]["pp"]) == (8, 2)
    assert len(v["tie_breakers"]) == 2
    a = doc["candidates"][0]["assumptions"]
    assert a["seq"] == 8192 and a["pp_link"] == "inter-node" and a["tp_link"] == "intra-node"
    assert a["pp_gbs"] == pytest.approx(50.0) and a["tp_gbs"] == pytest.approx(450.0)


def _even_report(batch, split="even"):
    """The seed without context parallelism, even splits only by default."""
    return search(model_preset("llama3-70b"), TrainingSpec(batch), cluster_preset("dgx-h100", 4),
                  SearchSpace(split=split, cp=1))


def test_bubble_is_explained_as_uneven_work_plus_fill_and_drain():
    """With even splits the seed's 8.4% bubble stays near 8% at any micro-batch count:
    the pipeline rank holding the logit layer works ~9% more than the others; the fill
    and drain, which the closed forms count, is a small remainder that shrinks with
    micro-batches."""
    notes = {}
    for batch in (128, 2048):
        best = _even_report(batch).best
        notes[batch] = best
        text = bubble_note(best, 128256).replace("\n  ", " ")
        assert "holds" in text and "the logit layer (vocabulary 128256)" in text
        assert best.imbalance_fraction > 0.85 * best.bubble_fraction  # most of it
    fill = {b: p.bubble_fraction - p.imbalance_fraction for b, p in notes.items()}
    assert fill[2048] < fill[128]  # the formula's part shrinks with micro-batches
    assert bubble_note(_report("llama2-7b", "dgx-a100", 1, 64).best, 32000) is None  # no PP


def test_the_balanced_split_takes_most_of_the_imbalance_away():
    """The balanced split moves layers off the rank with the logit layer: without CP the
    seed's winner waits 3.7% on uneven work where the best even split waits 8.2%."""
    balanced, even = _even_report(512, split=None).best, _even_report(512).best
    assert balanced.config.split_name == "balanced" and even.config.split_name == "even"
    assert balanced.imbalance_fraction < 0.5 * even.imbalance_fraction
    text = bubble_note(balanced, 128256).replace("\n  ", " ")
    assert text.startswith("bubble: the winner's 4.8% is 3.7% uneven work")


def test_every_part_of_the_step_has_something_to_measure():
    """A tie can be decided by any part the explanation names, CP and EP included."""
    from ringpipe.cli.plan.verdict import MEASURE, MEASURE_CPU
    from ringpipe.cost.training.explain import PARTS

    assert set(PARTS) <= set(MEASURE) and set(PARTS) <= set(MEASURE_CPU)
