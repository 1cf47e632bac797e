"""The command-line applications built on the library; ``carlib COMMAND`` runs them.

- :mod:`carlib.apps.cli` — the ``carlib`` command and its sub-commands.
- :mod:`carlib.apps.segment` — ``carlib segment``: one photo, a folder or a glob, any words.
- :mod:`carlib.apps.folder_segmentation` — its folder runner: resume, pseudo-labels, torchrun shards.
- :mod:`carlib.apps.eval` — ``carlib eval``: a benchmark run (the harness is :mod:`carlib.evaluation`).
- :mod:`carlib.apps.ablate` — ``carlib ablate``: the paper's ablation tables.
- :mod:`carlib.apps.gallery` — ``carlib gallery`` (``make demo``): execute the notebooks, publish HTML.
- :mod:`carlib.apps.demo` — ``carlib demo``: Grad-CAM, CLIP-ES and a segmentation as pictures.
- :mod:`carlib.apps.data`, :mod:`carlib.apps.world`, :mod:`carlib.apps.weights` — datasets, ShapesWorld, weights.
- :mod:`carlib.apps.options` — the options ``segment`` and ``eval`` share.
- :mod:`carlib.apps.interrupts` — Ctrl-C and SIGTERM in any command: one line, exit status 130.
"""
