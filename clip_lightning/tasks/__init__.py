"""Tasks on a frozen CLIP backbone; one module each.

- :mod:`.base`: ``FrozenBackboneTask``, what every task shares (outputs per split, gathering
  under DDP, feature requests from callbacks, the results record written once per run);
- :mod:`.zeroshot`: zero-shot classification (``CLIPEvaluator``), with :mod:`.classifier`
  (prompt-ensembled classifier weights, their cache and the logits);
- :mod:`.retrieval`: zero-shot image-text retrieval (``RetrievalEvaluator``), with :mod:`.recall`
  (blocked recall@k: ``blocked_topk``, ``retrieval_recall``, ``BlockedRecall``);
- :mod:`.backbone`: the frozen model by name, checkpoint or random weights;
- :mod:`.results`: ``RunResult``, what results.json holds.

Submodules are imported on use, so ``import clip_lightning`` stays free of Lightning.
"""

from importlib import import_module
from typing import Any

_LAZY = {
    "RetrievalEvaluator": ".retrieval",
    "BlockedRecall": ".recall",
    "blocked_topk": ".recall",
    "retrieval_recall": ".recall",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
