"""The linear probe: callback, C search, solvers and the feature cache."""
