"""The .lstm file: its byte layout, and the entropy coding of its bit planes (integers only, no torch)."""
