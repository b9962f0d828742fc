"""The optimizer contract as a pytest suite: a test file writes ``class TestAdam(OptimizerContract)`` and
fills in its tables; each test runs one of the checks of :mod:`companion.testing.optim_contract`."""

import copy

import torch

from companion.testing.installed_torch import skip_unless_supported
from companion.testing.optim_contract import (
    check_closed_loop,
    check_closure,
    check_cuda,
    check_invalid,
    check_loss_falls,
    check_lr_scheduler,
    check_fast_path,
    check_fast_path_round_trip,
    check_missing_grad_is_noop,
    check_refuses_switches,
    check_replay,
    check_signature,
    check_sparse_gradients,
    check_state_dict_round_trip,
    check_state_like_torch,
    REPLAY_ULPS,
)
from companion.optim.fused import fused_unavailable_reason


def _case_id(options) -> str:
    return "-".join(f"{k}={v}" for k, v in options.items()) or "defaults"


def _one_step(cls, options) -> None:
    """One step of ``cls`` on a float64 vector (raising what it raises)."""
    p = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    p.grad = torch.ones_like(p)
    cls([p], **copy.deepcopy(options)).step()


class OptimizerContract:
    """The contract as a pytest suite. A test file writes ``class TestAdam(OptimizerContract)`` and sets:

    ``ours``, ``theirs`` (the classes), ``cases`` (option combinations for the closed loop, the replay
    and the loss check), ``round_trip`` (for the state_dict checks), ``missing_grad``, ``invalid`` (bad
    options), ``switches`` (implementation switches to refuse), ``scheduled`` (options run under an
    lr scheduler), ``tensor_lr`` (options holding 1-element tensors), ``closure`` (options for the
    closure check), ``state`` (options whose state is compared after a few steps), ``sparse`` (options
    run on sparse gradients), ``cuda`` (options for the GPU check), ``foreach`` and ``fused`` (options
    compared with that path on against torch's same path, and moved between the paths by state_dict).
    An empty table skips its test.
    """

    ours = theirs = None
    round_trip_ulps = REPLAY_ULPS
    cases: list = []
    round_trip: list = []
    missing_grad: list = []
    invalid: list = []
    switches: list = []
    scheduled: list = []
    tensor_lr: list = []
    closure: list = [{}]
    closure_shape: tuple = (
        2,
    )  # the parameter of the closure check ((1, 2) for an optimizer of matrices)
    state: list = [{}]
    sparse: list = [{}]
    cuda: list = []
    foreach: list = []
    fused: list = []
    fused_missing_every = 3  # the fused check's replay leaves out one gradient every this many steps (0: never)

    # which table parametrizes which test's argument
    TABLES = {
        "test_closed_loop": "cases",
        "test_replay": "cases",
        "test_loss_falls_or_rises_with_maximize": "cases",
        "test_state_dict_round_trip": "round_trip",
        "test_missing_grad_is_noop": "missing_grad",
        "test_invalid": "invalid",
        "test_lr_scheduler": "scheduled",
        "test_tensor_lr": "tensor_lr",
        "test_closure_returns_loss": "closure",
        "test_state_like_torch": "state",
        "test_sparse_gradients_like_torch": "sparse",
        "test_cuda": "cuda",
        "test_foreach": "foreach",
        "test_foreach_state_dict": "foreach",
        "test_fused": "fused",
        "test_fused_state_dict": "fused",
    }

    def pytest_generate_tests(self, metafunc):
        table = self.TABLES.get(metafunc.function.__name__)
        if table is not None and "options" in metafunc.fixturenames:
            rows = getattr(self, table)
            import pytest  # only when pytest collects the suite: the check functions need no pytest

            if rows:
                metafunc.parametrize("options", rows, ids=[_case_id(r) for r in rows])
            else:
                metafunc.parametrize(
                    "options",
                    [
                        pytest.param(
                            None, marks=pytest.mark.skip(reason=f"no {table} cases")
                        )
                    ],
                )

    def test_signature(self):
        check_signature(self.ours, self.theirs)

    def test_closed_loop(self, options):
        check_closed_loop(self.ours, self.theirs, options)

    def test_replay(self, options):
        check_replay(self.ours, self.theirs, options)

    def test_loss_falls_or_rises_with_maximize(self, options):
        check_loss_falls(self.ours, options)

    def test_state_dict_round_trip(self, options):
        check_state_dict_round_trip(
            self.ours, self.theirs, options, ulps=self.round_trip_ulps
        )

    def test_missing_grad_is_noop(self, options):
        check_missing_grad_is_noop(self.ours, options)

    def test_invalid(self, options):
        check_invalid(self.ours, self.theirs, options)

    def test_refuses_implementation_switches(self):
        check_refuses_switches(self.ours, self.switches)

    def test_lr_scheduler(self, options):
        check_lr_scheduler(self.ours, self.theirs, options)

    def test_tensor_lr(self, options):
        # an older torch's own optimizer may not take some tensor hyper-parameters
        # (Adam's 1-d beta2 in torch 2.9): the comparison skips there, with its error
        what = f"tensor hyper-parameters {_case_id(options)}"
        skip_unless_supported(lambda: _one_step(self.theirs, options), what)
        check_closed_loop(self.ours, self.theirs, options)

    def test_closure_returns_loss(self, options):
        check_closure(self.ours, self.theirs, options, shape=self.closure_shape)

    def test_state_like_torch(self, options):
        check_state_like_torch(self.ours, self.theirs, options)

    def test_sparse_gradients_like_torch(self, options):
        check_sparse_gradients(self.ours, self.theirs, options)

    def test_cuda(self, options):
        if not torch.cuda.is_available():
            import pytest

            pytest.skip("needs a CUDA device")
        check_cuda(self.ours, self.theirs, options)

    @staticmethod
    def _skip_without_fused():
        reason = fused_unavailable_reason()
        if reason:
            import pytest

            pytest.skip(reason)

    def test_foreach(self, options):
        for dtype in (torch.float64, torch.float32):
            check_fast_path(self.ours, self.theirs, options, "foreach", dtype)

    def test_foreach_state_dict(self, options):
        check_fast_path_round_trip(
            self.ours, self.theirs, options, "foreach", ulps=self.round_trip_ulps
        )

    def test_fused(self, options):
        self._skip_without_fused()
        for dtype in (torch.float64, torch.float32, torch.bfloat16):
            check_fast_path(
                self.ours,
                self.theirs,
                options,
                "fused",
                dtype,
                missing_every=self.fused_missing_every,
            )

    def test_fused_state_dict(self, options):
        self._skip_without_fused()
        check_fast_path_round_trip(
            self.ours, self.theirs, options, "fused", ulps=self.round_trip_ulps
        )
