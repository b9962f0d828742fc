"""Checks shared by the tests, the notebooks and the coursework grader: run ours and torch's on the same
thing and measure the difference (:mod:`~companion.testing.parity`), and the contract every optimizer
must meet (:mod:`~companion.testing.optim_contract`), and a second device for device tests, CUDA or a CPU
stand-in that catches device mixing (:mod:`~companion.testing.devices`)."""
