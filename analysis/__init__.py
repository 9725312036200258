"""Analysis of finished runs: figures, statistics and the report, from results/ only.

    python -m analysis.figures [--results results] [--out figures] [--smooth 3]

Modules: `analysis.runs` (discover and load runs), `analysis.curves` (seed alignment, smoothing,
averages over tasks: the one place for aggregation), `analysis.stats` (final / best scores, IQM
with bootstrap intervals, sample-efficiency ratio), `analysis.completeness` (expected vs missing
runs), `analysis.style` and `analysis.draw` (the look and the drawing of panels),
`analysis.paper_figures` (each paper figure's name, title and caption), `analysis.figures` (one
function per paper figure, generic figures, command-line entry point), `analysis.env_pictures`
(Fig. 11), `analysis.report` (REPORT.md), `analysis.tables` (Tables 1-2).
The results layout and every CSV schema: analysis/SCHEMA.md.
"""
