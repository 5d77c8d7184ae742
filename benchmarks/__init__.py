"""Benchmark harness: ghga-connector vs. ghga-connector 4.0.1 vs. raw boto3 on one sandbox.

Run ``python -m benchmarks --help``. Every client runs as a subprocess whose wall time,
CPU time (user + sys of the whole process tree) and peak RSS (sum over the tree) are
measured the same way; every output is checked by SHA-256. Results go to
``benchmarks/results/latest.{json,md,png}``; scratch data lives under ``benchmarks/work/``
and is deleted afterwards.
"""
