"""Measuring CaR: metrics, benchmark runs, ShapesWorld reports and the ablation tables, in one place.

- :mod:`carlib.evaluation.metrics` — confusion-matrix mIoU, referring metrics, mask IoU.
- :mod:`carlib.evaluation.benchmark` — :func:`evaluate`, the resumable, shardable benchmark run
  (``carlib eval``): one loop over a task object per benchmark kind (:mod:`carlib.evaluation.tasks`:
  semantic, referring, GRES, video), its run folder's protocol card (:mod:`carlib.evaluation.run_card`)
  and reports (:mod:`carlib.evaluation.eval_report`).
- :mod:`carlib.evaluation.reproduce` — every table of the paper as data with the commands that
  reproduce it: the only place published numbers are written (:func:`~carlib.evaluation.reproduce.published_for_run`
  gives an eval run its own).
- :mod:`carlib.evaluation.distributed` — a process's place in a ``torchrun`` job.
- :mod:`carlib.evaluation.shapesworld` — CaR on ShapesWorld scenes: mIoU, keep and drop rates.
- :mod:`carlib.evaluation.shapesworld_report` — the ShapesWorld CLIP's zero-shot, Grad-CAM and CLIP-ES figures.
- :mod:`carlib.evaluation.ablation` — the paper's ablation tables, on ShapesWorld or real data.
"""

from carlib.evaluation.benchmark import EvalSummary, evaluate
from carlib.evaluation.metrics import ConfusionMatrix, ReferringMetrics, iou

__all__ = ["ConfusionMatrix", "EvalSummary", "ReferringMetrics", "evaluate", "iou"]
