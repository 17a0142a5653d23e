"""``ringpipe plan --plot``: stacked step-time bars of the winner and the best TP-heavy
and PP-heavy plans, in the format the file's suffix names."""

import pytest

from ringpipe.cli import main
from ringpipe.cli.plan.plot import check_plot_path, plot_format, shown
from ringpipe.cost.hardware.cluster import cluster_preset
from ringpipe.cost.inference.search import kind
from ringpipe.cost.training.search import search
from ringpipe.cost.training.spec import TrainingSpec
from ringpipe.model.presets import model_preset

PLAN = ["plan", "--model", "llama3-70b", "--cluster", "dgx-h100", "--nodes", "4",
        "--global-batch", "512", "--top", "1"]


@pytest.mark.parametrize("suffix,magic", [(".svg", b"<?xml"), (".pdf", b"%PDF"),
                                          (".png", b"\x89PNG")])
def test_the_suffix_picks_the_format(suffix, magic, tmp_path, capsys):
    pytest.importorskip("matplotlib")
    target = tmp_path / f"plan{suffix}"
    assert main([*PLAN, "--plot", str(target)]) == 0
    data = target.read_bytes()
    assert data.startswith(magic)
    if suffix == ".svg":  # the bars and their legend are drawn
        text = data.decode()
        for label in ("compute", "TP communication", "PP bubble", "DP exposed", "optimizer"):
            assert label in text


def test_an_unknown_suffix_is_refused_up_front(tmp_path, capsys):
    assert main([*PLAN, "--plot", str(tmp_path / "plan.txt")]) == 2
    assert "name it .png, .svg or .pdf" in capsys.readouterr().err
    assert plot_format("plan") == "png" and plot_format("a/b.SVG") == "svg"
    with pytest.raises(ValueError, match="format"):
        check_plot_path(str(tmp_path / "plan.jpeg"))


def test_bars_are_the_winner_and_the_best_of_each_kind():
    report = search(model_preset("llama3-70b"), TrainingSpec(512), cluster_preset("dgx-h100", 4))
    bars = shown(report)
    assert bars[0] == ("winner (PP-heavy)", report.best)  # TP=2, CP=2, PP=8
    roles = dict(bars)
    assert kind(roles["best TP-heavy"].config.mesh) == "TP-heavy"
    assert "best PP-heavy" not in roles  # the winner is the best PP-heavy plan already
    assert all(sum(p.parts().values()) == pytest.approx(p.step_time) for _, p in bars)


def test_the_serving_plot_draws_the_itl_slo(tmp_path, capsys):
    """``plan --inference --plot``: the ITL SLO given is drawn (matplotlib's SVG keeps each
    text as a comment), and not drawn without one."""
    base = ["plan", "--inference", "--model", "llama3-8b", "--cluster", "dgx-h100",
            "--nodes", "1", "--top", "2"]
    with_slo, without = tmp_path / "slo.svg", tmp_path / "none.svg"
    assert main([*base, "--itl-slo-ms", "30", "--plot", str(with_slo)]) == 0
    assert main([*base, "--plot", str(without)]) == 0
    assert "ITL SLO 30 ms" in with_slo.read_text()
    assert "ITL SLO" not in without.read_text()
