"""Hookline's benchmark suite: `python -m bench.run` (or `make bench`).

Each benchmark measures the real code path side by side with a baseline, in repeated
interleaved rounds, against loopback receivers that run in their own process. The report goes
to bench/results/latest.{md,json} (+ PNG plots) and the README's performance section.
"""
