"""The paper's figures, described: name (results/ folder and output stem), title and caption of
each, in the paper's order.

Read by `analysis.figures` (which pairs each with its drawing function) and by `analysis.report`
(which lists every one, drawn or not); neither reads the other through this module.
"""
from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class PaperFigure:
    name: str
    title: str
    caption: str


FIG1_TITLE = "Fig. 1 (right): average performance over tasks"
FIG11_TITLE = "Fig. 11: the environments"

PAPER_FIGURES = [
    PaperFigure("fig3", "Fig. 3: online RL with offline data",
                "EXPO vs RLPD, IDQL, DIPO, QSM; no pretraining, 50/50 offline/online batches."),
    PaperFigure("fig4", "Fig. 4: offline-to-online",
                "EXPO vs IDQL, Cal-QL, DAC, RLPD after offline pretraining."),
    PaperFigure("fig5", "Fig. 5: OTF action in the TD backup (ablation)",
                "EXPO vs EXPO whose backup uses one base-policy sample (no OTF backup)."),
    PaperFigure("fig6", "Fig. 6: no action edits (ablation)",
                "EXPO vs argmax over base-policy samples only."),
    PaperFigure("fig7", "Fig. 7: dataset subsampling",
                "Success after online RL (y) against the success of an imitation policy trained "
                "on the same subsample (x), for EXPO and EXPO + entropy backup, averaged over "
                "seeds, one point per subsample size; fig7_demos: final success against the "
                "number of demonstrations."),
    PaperFigure("fig8", "Fig. 8: no offline data kept",
                "EXPO vs Cal-QL pretraining + SAC fine-tuning, buffers warm-started with "
                "rollouts of the pretrained policy."),
    PaperFigure("fig9", "Fig. 9: number of action samples N",
                "EXPO learning curves for each N."),
    PaperFigure("fig10", "Fig. 10: edit scale beta",
                "EXPO learning curves for each beta."),
]
PAPER_BY_NAME = {f.name: f for f in PAPER_FIGURES}
