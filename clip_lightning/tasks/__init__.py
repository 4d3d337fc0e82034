"""Tasks on a frozen CLIP backbone; one module each.

- :mod:`.base`: ``FrozenBackboneTask``, what every task shares (outputs per split, gathering
  under DDP, feature requests from callbacks, the results record written once per run);
- :mod:`.zeroshot`: zero-shot classification (``CLIPEvaluator``), with :mod:`.classifier`
  (prompt-ensembled classifier weights, their cache and the logits);
- :mod:`.backbone`: the frozen model by name, checkpoint or random weights;
- :mod:`.results`: ``RunResult``, what results.json holds.

Submodules are imported on use, so ``import clip_lightning`` stays free of Lightning.
"""
