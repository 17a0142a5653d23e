"""``python -m ringpipe.cost.validate``: the training model's out-of-sample report.

The command users type; the report is :mod:`ringpipe.cost.published.validate`.
"""

from ringpipe.cost.published.validate import report

if __name__ == "__main__":
    print(report())
