"""Models and weights: the bundled models by name, and the weights file format."""
