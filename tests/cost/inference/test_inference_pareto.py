"""--plot prices and draws only the best-ranked layouts, not every layout of the cluster."""

from ringpipe.cli.plan.inference import PLOT_LAYOUTS
from ringpipe.cost import cluster_preset, model_preset
from ringpipe.cost.inference.search import label, layouts, pareto_curves
from ringpipe.cost.inference.workload import Workload
from ringpipe.mesh import Mesh


def test_pareto_curves_price_only_the_layouts_asked_for():
    model, cluster = model_preset("llama3-8b"), cluster_preset("dgx-h100")
    assert len(layouts(model, cluster.world)) > 2
    only = [Mesh(tp=1, pp=1, dp=8), Mesh(tp=8, pp=1, dp=1)]
    curves = pareto_curves(model, cluster, Workload(128, 128, 1), only)
    assert set(curves) == {label(lay) for lay in only}
    assert PLOT_LAYOUTS <= 12
