"""Local stand-ins for a cluster, shared by the demo, the tests and the benchmark.

Real parts only: an HTTP(S) server, the real Triton server from the nvidia-pytriton wheel, and
sample python-backend models that this machine's Triton can load.
"""
