"""The course core that most chapters import: device and seeding (:mod:`~companion.core.device`), small
offline data sets (:mod:`~companion.core.data`), 2-D test functions (:mod:`~companion.core.functions`),
the networks (:mod:`~companion.core.models`), the training loop (:mod:`~companion.core.train`), plots
(:mod:`~companion.core.plot`) and looking inside a network (:mod:`~companion.core.diagnostics`)."""
