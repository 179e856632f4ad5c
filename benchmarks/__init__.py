"""Benchmarks of the course: simulator speed, sampler speed and quality, notebook run times.

Run ``python -m benchmarks`` (or ``make bench``) from the repository root.
"""
