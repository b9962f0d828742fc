"""The course core that the chapters import.

- running: device and seeding (:mod:`~companion.core.device`), the one mini-batch loop and ``fit``
  (:mod:`~companion.core.train`), small offline data sets (:mod:`~companion.core.data`), the networks
  (:mod:`~companion.core.models`), 2-D test functions (:mod:`~companion.core.functions`), plots
  (:mod:`~companion.core.plot`);
- measuring: looking inside a network (:mod:`~companion.core.diagnostics`), calibration
  (:mod:`~companion.core.calibration`), means and intervals over seeds (:mod:`~companion.core.stats`),
  argument checks (:mod:`~companion.core.checks`);
- training practice: the learning-rate range test (:mod:`~companion.core.lr_range`), hyper-parameter
  search (:mod:`~companion.core.search`), checks of a training run (:mod:`~companion.core.debugging`),
  data-parallel training in several processes (:mod:`~companion.core.parallel`).
"""
