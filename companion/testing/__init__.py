"""Checks shared by the tests, the notebooks and the coursework grader: run ours and torch's on the same
thing and measure the difference (:mod:`~companion.testing.parity`), and the contract every optimizer
must meet (:mod:`~companion.testing.optim_contract`)."""
