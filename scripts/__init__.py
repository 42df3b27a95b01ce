"""The project's commands: training, evaluation and benchmarks (python scripts/NAME.py or python -m scripts.NAME)."""
