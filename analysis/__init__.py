"""Analysis of finished runs: load per-seed CSVs, aggregate seeds, draw the paper's learning curves.

    python -m analysis.figures [--results results] [--out figures] [--smooth 3]

Modules: `analysis.runs` (discover and load runs), `analysis.curves` (pure aggregation and
smoothing functions), `analysis.figures` (plots, summary tables, command-line entry point).
"""
