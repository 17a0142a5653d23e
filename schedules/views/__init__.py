"""Views of a schedule: the text grid, the step grid that marks a failing step, SVG,
Chrome trace and the JSON summary.
"""
