"""Neural network architectures. Modules here import only torch."""
