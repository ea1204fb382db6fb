"""`dlrun explain RUN_DIR`: why a trained model predicts what it predicts.

One module per family of methods (permutation, shapley, lime_rows: tables;
gradients, features: images), each method one function of (model, data, options)
listed in `registry`; `task.explain` loads the run and writes the results."""
