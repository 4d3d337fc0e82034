"""The linear probe (CLIP paper, appendix A.3); one concern per module.

- :mod:`.callback`: ``LinearProbe``, which asks the task for features and adds its results;
- :mod:`.protocol`: check the labels, choose C on val, refit on train + val, score test;
- :mod:`.search`: the paper's search over C;
- :mod:`.sklearn_solver`: scikit-learn's L-BFGS logistic regression (a solver is one module);
- :mod:`.cache`: train/val features on disk, keyed by everything that changes them.
"""
