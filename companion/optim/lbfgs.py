r"""L-BFGS (Liu & Nocedal, 1989) with an optional strong-Wolfe line search (Nocedal & Wright, Alg. 3.5/3.6),
written from scratch with the contract of ``torch.optim.LBFGS``.

L-BFGS works on the **flattened parameters**: all parameter tensors of its one group are concatenated into
one vector θ ∈ ℝⁿ (complex parameters as their real and imaginary parts), and so are their gradients.
The curvature pairs, the search direction and the line search all live in that one space, which is why
this is not a ``PerTensorOptimizer`` (``companion.optim._base``) and why torch allows a single parameter
group. ``torch.optim.Optimizer`` is subclassed only for its bookkeeping (``state``, ``state_dict``); the
whole state hangs, as in torch, on the first parameter.

:func:`two_loop` computes the quasi-Newton direction, :func:`cubic_minimizer` and :func:`strong_wolfe`
the step length; :class:`LBFGS` is the outer loop, which makes the same decisions as torch so that the
iterates agree.
"""

import torch
from torch import Tensor

from companion.core.checks import check
from companion.optim._base import check_lr


def two_loop(grad: Tensor, s: list, y: list, rho: list, gamma, alpha: list) -> Tensor:
    r"""The L-BFGS direction :math:`d = -H_k g` by the two-loop recursion (Nocedal & Wright, Alg. 7.4).

    With the m most recent secant pairs :math:`s_i = \theta_{i+1} - \theta_i`, :math:`y_i = g_{i+1} - g_i`
    (oldest first), :math:`\rho_i = 1 / y_i^\top s_i` and the initial matrix :math:`H_0 = \gamma I`,
    :math:`\gamma = s^\top y / y^\top y` of the newest pair:

    .. math::
        q &\leftarrow -g \\
        \alpha_i &= \rho_i\, s_i^\top q, \qquad q \leftarrow q - \alpha_i y_i
            \qquad i = m-1, \dots, 0 \\
        r &\leftarrow \gamma\, q \\
        \beta_i &= \rho_i\, y_i^\top r, \qquad r \leftarrow r + (\alpha_i - \beta_i)\, s_i
            \qquad i = 0, \dots, m-1

    and :math:`d = r`. This equals :math:`-H g` for the matrix BFGS builds from :math:`H_0` by the m updates
    :math:`H \leftarrow (I - \rho\, s y^\top) H (I - \rho\, y s^\top) + \rho\, s s^\top`, in O(mn) operations
    and without forming H. ``alpha`` is the buffer the α_i are written to (torch's ``state["al"]``).
    """
    # q = −g
    q = grad.neg()
    for i in range(len(s) - 1, -1, -1):
        # α_i = ρ_i s_iᵀ q
        alpha[i] = s[i].dot(q) * rho[i]
        # q ← q − α_i y_i
        q.add_(y[i], alpha=-alpha[i])
    # r = H₀ q = γ q
    r = torch.mul(q, gamma)
    for i in range(len(s)):
        # β_i = ρ_i y_iᵀ r
        beta = y[i].dot(r) * rho[i]
        # r ← r + (α_i − β_i) s_i
        r.add_(s[i], alpha=alpha[i] - beta)
    return r


def cubic_minimizer(a, fa, ga, b, fb, gb, bounds=None):
    r"""The minimizer of the cubic that matches φ and φ' at two step lengths a and b (Nocedal & Wright, eq. 3.59),
    clipped to ``bounds`` (default: the interval between a and b).

    With the points ordered so that :math:`x_1 \le x_2`:

    .. math::
        d_1 = \phi'_1 + \phi'_2 - 3\,\frac{\phi_1 - \phi_2}{x_1 - x_2}, \qquad
        d_2 = \sqrt{d_1^2 - \phi'_1 \phi'_2}, \qquad
        x^\star = x_2 - (x_2 - x_1)\,\frac{\phi'_2 + d_2 - d_1}{\phi'_2 - \phi'_1 + 2 d_2}.

    When :math:`d_1^2 < \phi'_1\phi'_2` the cubic has no minimizer and the bounds' midpoint is returned.
    """
    lower, upper = bounds if bounds is not None else (min(a, b), max(a, b))
    # order the two points: x₁ ≤ x₂ (the formulas for d₁ and d₂ are symmetric)
    (x1, f1, g1), (x2, f2, g2) = (
        ((a, fa, ga), (b, fb, gb)) if a <= b else ((b, fb, gb), (a, fa, ga))
    )
    # d₁ = φ'₁ + φ'₂ − 3 (φ₁ − φ₂)/(x₁ − x₂)
    d1 = g1 + g2 - 3 * (f1 - f2) / (x1 - x2)
    # d₂² = d₁² − φ'₁ φ'₂
    d2_square = d1**2 - g1 * g2
    if d2_square >= 0:
        d2 = d2_square.sqrt()
        # x* = x₂ − (x₂ − x₁)(φ'₂ + d₂ − d₁)/(φ'₂ − φ'₁ + 2 d₂), clipped to the bounds
        x_star = x2 - (x2 - x1) * ((g2 + d2 - d1) / (g2 - g1 + 2 * d2))
        return min(max(x_star, lower), upper)
    # no real minimizer (or a NaN): the middle of the allowed interval
    return (lower + upper) / 2.0


def strong_wolfe(
    phi, t, d, f, g, gtd, c1=1e-4, c2=0.9, tolerance_change=1e-9, max_ls=25
):
    r"""A step length t along d satisfying the strong Wolfe conditions, by bracketing then zooming
    (Nocedal & Wright, Alg. 3.5 and 3.6), with the decisions torch's ``lswolfe`` port makes.

    For :math:`\phi(t) = f(\theta + t d)`, :math:`\phi'(t) = \nabla f(\theta + t d)^\top d`:

    .. math::
        \phi(t) &\le \phi(0) + c_1\, t\, \phi'(0) && \text{(sufficient decrease)} \\
        |\phi'(t)| &\le c_2\, |\phi'(0)| && \text{(curvature)}

    ``phi(t)`` returns (φ(t), ∇f(θ + t d)); f, g, gtd are φ(0), ∇f(θ), φ'(0) < 0. Returns
    (φ(t), ∇f(θ + t d), t, number of evaluations); at most ``max_ls`` evaluations after the first.
    """
    d_norm = d.abs().max()
    f_new, g_new = phi(t)
    evals, ls_iter = 1, 0
    gtd_new = g_new.dot(d)
    # bracketing (Alg. 3.5): grow t until an interval [t_prev, t] must contain an acceptable step
    t_prev, f_prev, g_prev, gtd_prev = 0, f, g, gtd
    done = False
    while ls_iter < max_ls:
        # sufficient decrease fails, or φ rose since the last trial: the minimizer lies between them
        if f_new > (f + c1 * t * gtd) or (ls_iter > 1 and f_new >= f_prev):
            bracket = [[t_prev, f_prev, gtd_prev, g_prev], [t, f_new, gtd_new, g_new]]
            break
        # strong curvature condition holds: t is accepted
        if abs(gtd_new) <= -c2 * gtd:
            bracket, done = [[t, f_new, gtd_new, g_new]], True
            break
        # φ'(t) ≥ 0: φ turned upwards inside [t_prev, t]
        if gtd_new >= 0:
            bracket = [[t_prev, f_prev, gtd_prev, g_prev], [t, f_new, gtd_new, g_new]]
            break
        # extrapolate: the cubic's minimizer, kept within [t + 0.01 (t − t_prev), 10 t]
        t_next = cubic_minimizer(
            t_prev,
            f_prev,
            gtd_prev,
            t,
            f_new,
            gtd_new,
            bounds=(t + 0.01 * (t - t_prev), t * 10),
        )
        t_prev, f_prev, g_prev, gtd_prev = t, f_new, g_new, gtd_new
        t = t_next
        f_new, g_new = phi(t)
        evals, ls_iter = evals + 1, ls_iter + 1
        gtd_new = g_new.dot(d)
    if ls_iter == max_ls:
        # out of evaluations while bracketing: the better of 0 and the last t
        bracket = [[0, f, None, g], [t, f_new, None, g_new]]

    # zoom (Alg. 3.6): shrink the bracket [lo, hi], φ(lo) ≤ φ(hi), until t satisfies both conditions
    lo, hi = (0, 1) if bracket[0][1] <= bracket[-1][1] else (1, 0)
    insufficient_progress = False
    while not done and ls_iter < max_ls:
        if abs(bracket[1][0] - bracket[0][0]) * d_norm < tolerance_change:
            break  # the bracket is too small to move θ
        t = cubic_minimizer(*bracket[0][:3], *bracket[1][:3])
        # safeguard: a trial within 10% of an end, twice in a row or outside, is moved 10% inside
        left, right = (
            min(bracket[0][0], bracket[1][0]),
            max(bracket[0][0], bracket[1][0]),
        )
        margin = 0.1 * (right - left)
        if min(right - t, t - left) < margin:
            if insufficient_progress or t >= right or t <= left:
                t = right - margin if abs(t - right) < abs(t - left) else left + margin
                insufficient_progress = False
            else:
                insufficient_progress = True
        else:
            insufficient_progress = False
        f_new, g_new = phi(t)
        evals, ls_iter = evals + 1, ls_iter + 1
        gtd_new = g_new.dot(d)
        if f_new > (f + c1 * t * gtd) or f_new >= bracket[lo][1]:
            # sufficient decrease fails or no lower than φ(lo): t becomes the high end
            bracket[hi] = [t, f_new, gtd_new, g_new]
            lo, hi = (0, 1) if bracket[0][1] <= bracket[1][1] else (1, 0)
        else:
            if abs(gtd_new) <= -c2 * gtd:
                done = True  # both strong Wolfe conditions hold
            elif gtd_new * (bracket[hi][0] - bracket[lo][0]) >= 0:
                bracket[hi] = bracket[
                    lo
                ]  # φ' points away from hi: the old low becomes the high end
            bracket[lo] = [t, f_new, gtd_new, g_new]
    t, f_new, _, g_new = bracket[lo]
    return f_new, g_new, t, evals


class LBFGS(torch.optim.Optimizer):
    """L-BFGS, like ``torch.optim.LBFGS``: the same arguments, defaults, ValueErrors, group and state keys
    (``func_evals``, ``n_iter``, ``d``, ``t``, ``old_dirs`` (the y's), ``old_stps`` (the s's), ``ro``,
    ``H_diag``, ``prev_flat_grad``, ``prev_loss``, ``al``), so state_dicts move between the two.

    ``step(closure)`` needs the closure: it runs up to ``max_iter`` iterations (at most ``max_eval``
    evaluations) of :func:`two_loop` plus a fixed step ``lr`` or, with ``line_search_fn="strong_wolfe"``,
    :func:`strong_wolfe`, and returns the loss of the closure's first evaluation.
    """

    def __init__(
        self,
        params,
        lr: float | Tensor = 1,
        max_iter: int = 20,
        max_eval: int | None = None,
        tolerance_grad: float = 1e-7,
        tolerance_change: float = 1e-9,
        history_size: int = 100,
        line_search_fn: str | None = None,
    ) -> None:
        check_lr(lr)
        if max_eval is None:
            max_eval = max_iter * 5 // 4
        defaults = dict(
            lr=lr,
            max_iter=max_iter,
            max_eval=max_eval,
            tolerance_grad=tolerance_grad,
            tolerance_change=tolerance_change,
            history_size=history_size,
            line_search_fn=line_search_fn,
        )
        super().__init__(params, defaults)
        check(
            len(self.param_groups) == 1,
            "LBFGS doesn't support per-parameter options (parameter groups)",
        )
        self._params = self.param_groups[0]["params"]

    def _flat_grad(self) -> Tensor:
        """∇f(θ) as one vector (a missing gradient counts as zeros)."""
        views = []
        for p in self._params:
            grad = torch.zeros_like(p) if p.grad is None else p.grad
            grad = grad.to_dense() if grad.is_sparse else grad
            views.append(
                (torch.view_as_real(grad) if grad.is_complex() else grad).reshape(-1)
            )
        return torch.cat(views)

    def _move(self, t, d: Tensor) -> None:
        """θ ← θ + t d, d cut back into the parameters' shapes."""
        offset = 0
        for p in self._params:
            p = torch.view_as_real(p) if p.is_complex() else p
            p.add_(d[offset : offset + p.numel()].view_as(p), alpha=t)
            offset += p.numel()

    def _phi(self, closure, theta: list, d: Tensor):
        """φ(t) for the line search: (f(θ + t d), ∇f(θ + t d)), θ restored afterwards."""

        def phi(t):
            self._move(t, d)
            loss = float(closure())
            grad = self._flat_grad()
            for p, saved in zip(self._params, theta):
                p.copy_(saved)
            return loss, grad

        return phi

    @torch.no_grad()
    def step(self, closure):
        """Up to ``max_iter`` L-BFGS iterations; returns the closure's first loss."""
        closure = torch.enable_grad()(closure)
        group = self.param_groups[0]
        lr = group["lr"].squeeze() if isinstance(group["lr"], Tensor) else group["lr"]
        max_iter, max_eval, history_size = (
            group["max_iter"],
            group["max_eval"],
            group["history_size"],
        )
        tol_grad, tol_change = group["tolerance_grad"], group["tolerance_change"]
        state = self.state[
            self._params[0]
        ]  # all of L-BFGS's state hangs on the first parameter
        state.setdefault("func_evals", 0)
        state.setdefault("n_iter", 0)

        first_loss = closure()
        loss, evals = float(first_loss), 1
        state["func_evals"] += 1
        g = self._flat_grad()
        # first-order optimality: ‖g‖_∞ ≤ tolerance_grad
        if g.abs().max() <= tol_grad:
            return first_loss

        d, t, y_list, s_list, rho = (
            state.get(k) for k in ("d", "t", "old_dirs", "old_stps", "ro")
        )
        gamma, g_prev, loss_prev = (
            state.get("H_diag"),
            state.get("prev_flat_grad"),
            state.get("prev_loss"),
        )
        for n in range(1, max_iter + 1):
            state["n_iter"] += 1
            if state["n_iter"] == 1:
                # no curvature yet: steepest descent, H₀ = I
                d, y_list, s_list, rho, gamma = g.neg(), [], [], [], 1
            else:
                # the secant pair of the last step: y = g_{k+1} − g_k, s = t d
                y, s = g.sub(g_prev), d.mul(t)
                ys = y.dot(s)
                # curvature condition yᵀs > 0 (with a margin): only then is the pair stored
                if ys > 1e-10:
                    if len(y_list) == history_size:
                        (
                            y_list.pop(0),
                            s_list.pop(0),
                            rho.pop(0),
                        )  # forget the oldest pair
                    y_list.append(y), s_list.append(s), rho.append(1.0 / ys)
                    # H₀ = γ I, γ = sᵀy / yᵀy
                    gamma = ys / y.dot(y)
                if "al" not in state:
                    state["al"] = [None] * history_size
                d = two_loop(g, s_list, y_list, rho, gamma, state["al"])
            if g_prev is None:
                g_prev = g.clone(memory_format=torch.contiguous_format)
            else:
                g_prev.copy_(g)
            loss_prev = loss

            # first trial step: min(1, 1/‖g‖₁)·lr on the first iteration, lr afterwards
            t = min(1.0, 1.0 / g.abs().sum()) * lr if state["n_iter"] == 1 else lr
            gtd = g.dot(d)  # φ'(0) = gᵀd
            if gtd > -tol_change:
                break  # d is no descent direction (to the tolerance)

            if group["line_search_fn"] is not None:
                if group["line_search_fn"] != "strong_wolfe":
                    raise RuntimeError("only 'strong_wolfe' is supported")
                theta = [
                    p.clone(memory_format=torch.contiguous_format) for p in self._params
                ]
                # the search may use what is left of max_eval (as torch does from 2.10; before, 25 evaluations)
                loss, g, t, used = strong_wolfe(
                    self._phi(closure, theta, d),
                    t,
                    d,
                    loss,
                    g,
                    gtd,
                    max_ls=max_eval - evals,
                )
                self._move(t, d)
            else:
                # fixed step θ ← θ + t d; f and g are re-evaluated except after the last iteration
                self._move(t, d)
                used = 0
                if n != max_iter:
                    loss = float(closure())
                    g, used = self._flat_grad(), 1
            evals += used
            state["func_evals"] += used

            if n == max_iter or evals >= max_eval:
                break
            if g.abs().max() <= tol_grad:
                break  # ‖g‖_∞ ≤ tolerance_grad
            if d.mul(t).abs().max() <= tol_change or abs(loss - loss_prev) < tol_change:
                break  # the step or the change in f is below tolerance_change

        state.update(
            d=d,
            t=t,
            old_dirs=y_list,
            old_stps=s_list,
            ro=rho,
            H_diag=gamma,
            prev_flat_grad=g_prev,
            prev_loss=loss_prev,
        )
        return first_loss
