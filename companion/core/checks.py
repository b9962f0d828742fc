"""The course's one validator style: ``check(valid, message)`` raises ``ValueError(message)``.

Every argument check in the package is written with it: the torch mirrors with torch's own messages
(``companion.optim._base.check_hyperparameters``, ``companion.nn.dropout.check_p``), everything else
with the two messages below.
"""


def check(valid: bool, message: str) -> None:
    """Raise ``ValueError(message)`` unless ``valid``."""
    if not valid:
        raise ValueError(message)


def check_non_negative(name: str, value: float) -> None:
    """``value`` ≥ 0, else ``ValueError("<name> must be non-negative, got <value>")``."""
    check(value >= 0, f"{name} must be non-negative, got {value}")


def check_probability(name: str, p: float, *, below_one: bool = False) -> None:
    """``p`` in [0, 1] (or [0, 1) with ``below_one``), else ``ValueError("<name> must be in [0, 1], got <p>")``."""
    check(
        0.0 <= p < 1.0 if below_one else 0.0 <= p <= 1.0,
        f"{name} must be in [0, 1{')' if below_one else ']'}, got {p}",
    )
