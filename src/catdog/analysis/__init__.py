"""Reading and judging runs: metrics of predictions, run histories, figures, reports, benchmarks."""
