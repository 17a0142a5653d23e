"""The out-of-sample error ``ringpipe plan`` calls ties with is the one the validation
report measures (``python -m ringpipe.cost.validate``), to the printed 0.1%."""

import pytest

from ringpipe.cost.published.accuracy import (
    OUT_OF_SAMPLE_STEP_ERROR,
    measured_out_of_sample_error,
)


@pytest.mark.slow
def test_stored_error_is_the_reports():
    assert round(measured_out_of_sample_error(), 3) == pytest.approx(OUT_OF_SAMPLE_STEP_ERROR)
