"""Training: the runtime and its one loop, run files, recipes, losses, data, and fitting the entropy model."""
