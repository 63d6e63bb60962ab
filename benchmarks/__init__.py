"""The standard workload (shared/BENCHMARK.md), runnable against a fresh hub, writing a report."""
