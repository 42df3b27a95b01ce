"""The other tasks: denoising and classifying images with the bundled networks."""
