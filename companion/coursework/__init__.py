"""Coursework: assignments graded against torch itself.

``python -m companion.coursework list | release OUT | grade NAME SUBMISSION.ipynb... --out DIR``.
The sources are in the repository's ``assignments/`` (see :mod:`companion.coursework.assignment`); the
grader (:mod:`~companion.coursework.grader`) runs each submission in a sandbox
(:mod:`~companion.coursework.sandbox`, :mod:`~companion.coursework.child`, with a cgroup per run from
:mod:`~companion.coursework.cgroups`), where only the hidden checks'
probes (:mod:`~companion.coursework.probes`) observe the answer; it judges their plain observations
itself against torch (:mod:`~companion.coursework.checks`, :mod:`~companion.coursework.optim_judges`, with
the course's tolerances, :mod:`companion.testing`), and enforces the from-scratch rule
(:mod:`~companion.coursework.guard`). The teaching page of the book describes the workflow.
"""
