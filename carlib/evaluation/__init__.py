"""Measuring CaR: metrics, benchmark runs, ShapesWorld reports and the ablation tables, in one place.

- :mod:`carlib.evaluation.metrics` — confusion-matrix mIoU, referring metrics, mask IoU.
- :mod:`carlib.evaluation.benchmark` — :func:`evaluate`, the resumable, shardable benchmark run
  (``carlib eval``), and the paper's numbers (:data:`PAPER_MIOU`).
- :mod:`carlib.evaluation.distributed` — a process's place in a ``torchrun`` job.
- :mod:`carlib.evaluation.shapesworld` — CaR on ShapesWorld scenes: mIoU, keep and drop rates.
- :mod:`carlib.evaluation.shapesworld_report` — the ShapesWorld CLIP's zero-shot, Grad-CAM and CLIP-ES figures.
- :mod:`carlib.evaluation.ablation` — the paper's ablation tables, on ShapesWorld or real data.
"""

from carlib.evaluation.benchmark import PAPER_MIOU, EvalSummary, evaluate
from carlib.evaluation.metrics import ConfusionMatrix, ReferringMetrics, iou

__all__ = ["PAPER_MIOU", "ConfusionMatrix", "EvalSummary", "ReferringMetrics", "evaluate", "iou"]
