"""``python -m ringpipe.cost.inference_report``: the inference model's accuracy tables.

The command users type; the report is :mod:`ringpipe.cost.published.inference_report`.
"""

from ringpipe.cost.published.inference_report import report

if __name__ == "__main__":
    print(report(), end="")
