"""Training diagnostics: a callback measures gradients and activations on a fixed
batch (statistics.py), pure rules turn those numbers and the history into a verdict
with evidence and suggested overrides (rules.py), static checks run before training
(static.py), and a failing run can be rerun with the suggestions (repair.py)."""
