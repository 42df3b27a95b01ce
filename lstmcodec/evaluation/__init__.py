"""Measuring the codec: metrics, the rate-distortion and speed bench, the comparison page, the hostile-input
harness."""
