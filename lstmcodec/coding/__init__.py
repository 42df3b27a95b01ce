"""The codec: images <-> bit planes <-> .lstm bytes (the Codec), and what takes a codec: large images, batches,
rate control and spatially adaptive rates."""
