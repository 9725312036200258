"""Fig. 1 (right): average performance over tasks, EXPO vs prior methods.

Choice (the paper does not say it ran separate experiments): it is an aggregate over the Fig. 3
(online RL with offline data) and Fig. 4 (offline-to-online) runs, averaged over their 12 tasks, so
it has no runs of its own. Launching it launches exactly the runs of fig3 and fig4, in their own
folders (results/fig3/..., results/fig4/...); a dry run reports their union.
"""
GRID = {
    "description": "average over the 12 tasks of the Fig. 3 and Fig. 4 runs (no runs of its own)",
    "derived_from": ["fig3", "fig4"],
}
