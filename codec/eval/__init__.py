"""Rate-distortion evaluation: codecs swept over their quality range, BD-rate, reports, checks."""
