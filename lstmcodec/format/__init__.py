"""The .lstm file: its byte layout, the entropy coding of its bit planes, the geometry of tiled files, and what a
file holds without a network (integers only, no torch)."""
