"""The chapters' experiment harnesses: each module's docstring names the chapters that use it.

- :mod:`~companion.experiments.testbed`: the overfitting testbed of the regularization part;
- :mod:`~companion.experiments.regularizer_race`: regularizers run on the testbed under one budget;
- :mod:`~companion.experiments.optimizer_race`: optimizers raced on 2-D functions and on the digits MLP;
- :mod:`~companion.experiments.steps_to_target`: how many steps until a target is reached;
- :mod:`~companion.experiments.gradient_sequences`: an optimizer fed a prescribed gradient sequence;
- :mod:`~companion.experiments.nesterov_forms`: Nesterov's method in the papers' forms;
- :mod:`~companion.experiments.sparse_features`: a problem with rare features.
"""
