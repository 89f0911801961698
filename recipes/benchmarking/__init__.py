"""The throughput harness behind `recipes/benchmark.py`: timing, FLOP counting, runners, the
measuring processes and the PyTorch reference (PyTorch optional: `pip install -e ".[compare]"`).

Importing the package imports nothing else: the PyTorch worker (`pytorch_worker`) runs in a
process that must never load TensorFlow, so each module imports its framework itself.
"""
