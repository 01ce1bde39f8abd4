"""Baseline servers for benchmarks: the project's settings with naive views mounted instead."""

from portal.settings import *  # noqa: F403

ROOT_URLCONF = "bench.baseline_urls"
