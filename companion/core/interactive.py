"""Interactive figures for the book's pages: the momentum valley (5.1), the learning-rate schedules
(7.1) and the L1/L2/elastic-net minimum (4.2), precomputed over a grid by the package's own code.

Each figure is two functions: ``*_grid`` computes the numbers (plain lists, checked by the tests) and
``*_figure`` draws them with plotly and returns an HTML fragment (``<div>`` and ``<script>``, without
plotly.js, which the site serves itself: ``book/_ext/plotly_js.py``). A notebook shows it with
``IPython.display.HTML(momentum_figure(momentum_grid()))``, after ``load_plotly()`` once outside the
book's website. Sliders that must be read together (step
size and momentum) are joined by a few lines of JavaScript that pick the precomputed curve.
"""

import html
import json

import plotly.graph_objects as go
import torch

from companion.core.functions import quadratic
from companion.optim import SGD
from companion.optim import lr_scheduler as schedulers
from companion.regularization import soft_threshold

_CONFIG = {"responsive": True, "displaylogo": False}
_COLORS = {"L1": "#d62728", "L2": "#1f77b4", "elastic net": "#2ca02c"}


def _rounded(values, decimals: int) -> list:
    """A tensor or nested list as lists of floats rounded to ``decimals`` places (smaller pages:
    the figures need no more than a pixel's precision)."""
    if isinstance(values, torch.Tensor):
        values = values.tolist()
    if isinstance(values, (list, tuple)):
        return [_rounded(v, decimals) for v in values]
    return round(values, decimals) + 0.0  # + 0.0: no "-0.0"


def _html(fig: go.Figure, div_id: str, label: str, script: str = "") -> str:
    """The figure as an HTML fragment inside a ``role="figure"`` element with ``label`` as its text
    alternative; ``script`` runs once the figure is drawn (``{plot_id}`` is the figure's ``<div>``)."""
    body = fig.to_html(
        full_html=False,
        include_plotlyjs=False,
        div_id=div_id,
        config=_CONFIG,
        post_script=script or None,
    )
    return (
        f'<div class="companion-interactive" role="figure" '
        f'aria-label="{html.escape(label)}">{NEEDS_PLOTLY}{body}</div>'
    )


# Shown only where plotly.js is missing: in Jupyter, Colab or Binder before `load_plotly()`.
NEEDS_PLOTLY = (
    '<p hidden class="companion-needs-plotly">This interactive figure needs plotly.js. On the '
    "book's website it loads by itself; in a notebook, run "
    "<code>companion.core.interactive.load_plotly()</code> once, then run this cell again.</p>"
    '<script>if (typeof Plotly === "undefined") '
    "{document.currentScript.previousElementSibling.hidden = false;}</script>"
)


def load_plotly() -> None:
    """Load plotly.js into a running notebook (Jupyter, Colab, Binder), from the installed plotly
    package, without the network; the book's website serves it itself and needs no call."""
    import plotly.offline

    plotly.offline.init_notebook_mode(connected=False)


def _json(data) -> str:
    """JSON safe to put inside a ``<script>`` element."""
    return json.dumps(data, ensure_ascii=False, separators=(",", ":")).replace(
        "<", "\\u003c"
    )


# --- 5.1: the momentum valley ---------------------------------------------------------


def momentum_grid(
    kappa: float = 25.0,
    lrs=(0.005, 0.01, 0.02, 0.03, 0.04, 0.05, 0.06, 0.07, 0.08, 0.09, 0.1, 0.11),
    momenta=(0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95),
    steps: int = 60,
) -> dict:
    """Paths of ``companion.optim.SGD`` on f = ½(x² + κ y²) from ``quadratic(kappa).start``, for every
    (learning rate, momentum): one optimizer with one parameter group per pair, so all the paths advance
    together (the gradient of a sum of independent terms is each term's gradient).

    Returns ``paths[i][j]`` = ``[xs, ys]`` (``steps + 1`` points) and ``losses[i][j]`` = f after
    ``steps`` steps, for ``lrs[i]`` and ``momenta[j]``; ``fn`` is the function.
    """
    fn = quadratic(kappa)
    pairs = [(lr, m) for lr in lrs for m in momenta]
    points = [
        torch.tensor(fn.start, dtype=torch.float64, requires_grad=True) for _ in pairs
    ]
    optimizer = SGD(
        [{"params": [p], "lr": lr, "momentum": m} for p, (lr, m) in zip(points, pairs)]
    )
    trail = [torch.stack(points).detach().clone()]
    for _ in range(steps):
        optimizer.zero_grad()
        fn(torch.stack(points)).sum().backward()
        optimizer.step()
        trail.append(torch.stack(points).detach().clone())
    trail = torch.stack(trail, dim=1)  # (pair, step, xy)
    final = fn(trail[:, -1])
    n = len(momenta)
    return {
        "fn": fn,
        "lrs": list(lrs),
        "momenta": list(momenta),
        "steps": steps,
        "paths": [
            [trail[i * n + j].T.tolist() for j in range(n)] for i in range(len(lrs))
        ],
        "losses": [
            [final[i * n + j].item() for j in range(n)] for i in range(len(lrs))
        ],
    }


def _momentum_title(data: dict, i: int, j: int) -> str:
    loss, start = (
        data["losses"][i][j],
        data["fn"](torch.tensor(data["fn"].start)).item(),
    )
    verdict = "diverges" if not loss < start else f"f = {loss:.2e}"
    return (
        f"α = {data['lrs'][i]:g}, γ = {data['momenta'][j]:g}: "
        f"after {data['steps']} steps {verdict}"
    )


def momentum_figure(data: dict, lr: float = 0.07, momentum: float = 0.5) -> str:
    """The paths of :func:`momentum_grid` over the contours of f, with a step-size slider and a
    momentum slider (starting at ``lr`` and ``momentum``, which must be in the grid)."""
    fn, i0, j0 = data["fn"], data["lrs"].index(lr), data["momenta"].index(momentum)
    xs = torch.linspace(*fn.xlim, 91, dtype=torch.float64)
    ys = torch.linspace(*fn.ylim, 41, dtype=torch.float64)
    z = fn(torch.stack(torch.meshgrid(xs, ys, indexing="xy"), dim=-1))
    fig = go.Figure()
    fig.add_contour(
        x=_rounded(xs, 3),
        y=_rounded(ys, 3),
        z=_rounded(z.clamp(min=1e-3).log10(), 2),
        contours=dict(coloring="lines", start=-2, end=2, size=0.25),
        colorscale="Greys",
        showscale=False,
        hoverinfo="skip",
        name="log₁₀ f",
    )
    fig.add_scatter(x=[0], y=[0], mode="markers", name="minimum", marker_symbol="x")
    path = data["paths"][i0][j0]
    fig.add_scatter(
        x=_rounded(path[0], 3),
        y=_rounded(path[1], 3),
        mode="lines+markers",
        name="SGD",
        marker_size=4,
    )

    def slider(name, values, active, y):
        steps = [dict(method="skip", label=f"{v:g}", args=[]) for v in values]
        return dict(
            steps=steps,
            active=active,
            y=y,
            pad=dict(t=30),
            len=1.0,
            currentvalue=dict(prefix=name + " = "),
        )

    fig.update_layout(
        title=_momentum_title(data, i0, j0),
        height=560,
        template="plotly_white",
        xaxis=dict(range=fn.xlim, title="x"),
        yaxis=dict(range=fn.ylim, title="y"),
        margin=dict(l=50, r=20, t=50, b=10),
        showlegend=False,
        sliders=[
            slider("step size α", data["lrs"], i0, -0.15),
            slider("momentum γ", data["momenta"], j0, -0.55),
        ],
    )
    grid = {
        "paths": _rounded(data["paths"], 3),
        "titles": [
            [_momentum_title(data, i, j) for j in range(len(data["momenta"]))]
            for i in range(len(data["lrs"]))
        ],
    }
    script = f"""
const gd = document.getElementById('{{plot_id}}'), grid = {_json(grid)};
gd.on('plotly_sliderchange', () => {{
  const i = gd.layout.sliders[0].active, j = gd.layout.sliders[1].active;
  const [x, y] = grid.paths[i][j];
  Plotly.update(gd, {{x: [x], y: [y]}}, {{'title.text': grid.titles[i][j]}}, [2]);
}});"""
    label = (
        "Contour plot of the narrow quadratic valley f = ½(x² + 25 y²) with the path of SGD from "
        "(−4, 1); two sliders set the step size and the momentum, and the title gives f after "
        f"{data['steps']} steps."
    )
    return _html(fig, "momentum-valley", label, script)


# --- 7.1: learning-rate schedules -----------------------------------------------------


def _warmup_cosine(optimizer, warmup: int, L, epochs: int = 100):
    """``warmup`` epochs of linear warmup from 1 % of the rate, then a cosine to zero at ``epochs``."""
    if warmup == 0:
        return L.CosineAnnealingLR(optimizer, T_max=epochs)
    ramp = L.LinearLR(optimizer, start_factor=0.01, total_iters=warmup)
    decay = L.CosineAnnealingLR(optimizer, T_max=epochs - warmup)
    return L.SequentialLR(optimizer, [ramp, decay], milestones=[warmup])


SCHEDULES = {
    "StepLR": ("step_size", (5, 10, 20, 30, 50), lambda o, v, L: L.StepLR(o, v, 0.5)),
    "ExponentialLR": (
        "gamma",
        (0.9, 0.93, 0.95, 0.97, 0.99),
        lambda o, v, L: L.ExponentialLR(o, v),
    ),
    "PolynomialLR": (
        "power",
        (0.5, 1.0, 2.0, 3.0),
        lambda o, v, L: L.PolynomialLR(o, 100, v),
    ),
    "CosineAnnealingLR": (
        "T_max",
        (25, 50, 75, 100),
        lambda o, v, L: L.CosineAnnealingLR(o, v),
    ),
    "CosineAnnealingWarmRestarts": (
        "T_0",
        (5, 10, 20, 30),
        lambda o, v, L: L.CosineAnnealingWarmRestarts(o, v, T_mult=2),
    ),
    "CyclicLR": (
        "step_size_up",
        (5, 10, 20, 25),
        lambda o, v, L: L.CyclicLR(o, 0.001, 0.1, step_size_up=v),
    ),
    "OneCycleLR": (
        "pct_start",
        (0.1, 0.2, 0.3, 0.4, 0.5),
        lambda o, v, L: L.OneCycleLR(o, 0.1, 101, pct_start=v),
    ),
    "LinearLR warmup + cosine": ("warmup", (0, 5, 10, 20, 40), _warmup_cosine),
}
"""name: (the argument the slider sets, its values, ``make(optimizer, value, L)`` with ``L`` a
scheduler module: ours, ``companion.optim.lr_scheduler``, or torch's); the rate starts at 0.1."""


def schedule_curve(make, value, epochs: int = 100, L=schedulers) -> list[float]:
    """The learning rate at epochs 0 … ``epochs`` of ``make(optimizer, value, L)``, stepped on an
    SGD (lr 0.1, momentum 0.9 for the schedulers that cycle it) over one tensor without a gradient."""
    optimizer = SGD([torch.zeros(1, requires_grad=True)], lr=0.1, momentum=0.9)
    scheduler = make(optimizer, value, L)
    rates = [optimizer.param_groups[0]["lr"]]
    for _ in range(epochs):
        optimizer.step()
        scheduler.step()
        rates.append(optimizer.param_groups[0]["lr"])
    return rates


def schedule_grid(schedules: dict = SCHEDULES, epochs: int = 100) -> dict:
    """``curves[name][k]``: the rate over ``epochs`` epochs for the k-th value of the schedule's
    argument (see :data:`SCHEDULES`)."""
    return {
        "epochs": epochs,
        "schedules": {
            name: {
                "argument": argument,
                "values": list(values),
                "curves": [schedule_curve(make, v, epochs) for v in values],
            }
            for name, (argument, values, make) in schedules.items()
        },
    }


def schedule_figure(data: dict) -> str:
    """The curves of :func:`schedule_grid`: a dropdown picks the scheduler, a slider its argument
    (each slider starts at the middle of its values)."""
    names, schedules = list(data["schedules"]), list(data["schedules"].values())
    middle = [len(s["values"]) // 2 for s in schedules]
    titles = [
        [f"{name}({s['argument']}={v:g})" for v in s["values"]]
        for name, s in zip(names, schedules)
    ]
    curve = _rounded(schedules[0]["curves"][middle[0]], 5)
    fig = go.Figure(go.Scatter(x=list(range(len(curve))), y=curve, mode="lines"))
    sliders = [
        dict(
            steps=[dict(method="skip", label=f"{v:g}", args=[]) for v in s["values"]],
            active=middle[k],
            visible=k == 0,
            y=-0.12,
            len=1.0,
            pad=dict(t=40),
            currentvalue=dict(prefix=s["argument"] + " = "),
        )
        for k, s in enumerate(schedules)
    ]
    menu = dict(
        buttons=[dict(method="skip", label=name, args=[]) for name in names],
        active=0,
        x=0.0,
        xanchor="left",
        y=1.02,
        yanchor="bottom",
    )
    fig.update_layout(
        title=dict(text=titles[0][middle[0]], x=1.0, xanchor="right"),
        height=500,
        xaxis=dict(title="epoch", range=[0, data["epochs"]]),
        yaxis=dict(title="learning rate", range=[0, 0.105]),
        template="plotly_white",
        margin=dict(l=60, r=20, t=90, b=20),
        sliders=sliders,
        updatemenus=[menu],
    )
    grid = {
        "curves": [_rounded(s["curves"], 5) for s in data["schedules"].values()],
        "titles": titles,
    }
    script = f"""
const gd = document.getElementById('{{plot_id}}'), grid = {_json(grid)};
function show() {{
  const k = gd.layout.updatemenus[0].active, j = gd.layout.sliders[k].active;
  const layout = {{'title.text': grid.titles[k][j]}};
  grid.curves.forEach((_, s) => {{ layout[`sliders[${{s}}].visible`] = s === k; }});
  Plotly.update(gd, {{y: [grid.curves[k][j]]}}, layout, [0]);
}}
gd.on('plotly_sliderchange', show);
gd.on('plotly_buttonclicked', show);"""
    label = (
        "Learning rate against epoch for one of the course's schedulers; a menu chooses the "
        "scheduler (" + ", ".join(names) + ") and a slider sets its argument."
    )
    return _html(fig, "lr-schedules", label, script)


# --- 4.2: the L1, L2 and elastic-net minimum of a quadratic ---------------------------

LAMS = tuple(round(0.1 * k, 1) for k in range(36))
"""The penalty strengths of the slider: 0, 0.1, …, 3.5."""
PENALTIES = {"L1": 1.0, "elastic net": 0.5, "L2": 0.0}
"""name: the L1 share α of the penalty λ (α‖w‖₁ + (1 − α)/2 ‖w‖²), as in ``elastic_net_penalty``."""


def penalized_minima(
    H, center, lams, l1_ratio: float, steps: int = 300
) -> torch.Tensor:
    r"""The minimizers of ½(w − c)ᵀH(w − c) + λ(α‖w‖₁ + (1 − α)/2 ‖w‖²) for each λ in ``lams``
    (shape (len(lams), 2)), by proximal gradient descent from w = 0: a gradient step of size
    1/(L + (1 − α)λ) on the smooth part (L the largest eigenvalue of H), then the L1 proximal step,
    the course's ``soft_threshold`` by the step times αλ."""
    H, c = (
        torch.as_tensor(H, dtype=torch.float64),
        torch.as_tensor(center, dtype=torch.float64),
    )
    lam = torch.as_tensor(lams, dtype=torch.float64)[:, None]
    smooth = lam * (1 - l1_ratio)  # the L2 part's curvature, added to H's
    step = 1 / (torch.linalg.eigvalsh(H).max() + smooth)
    w = torch.zeros(len(lam), 2, dtype=torch.float64)
    for _ in range(steps):
        grad = (w - c) @ H + smooth * w  # H symmetric: ∇ = H(w − c) + (1 − α)λ w
        w = soft_threshold(w - step * grad, step * lam * l1_ratio)
    return w


def penalty_grid(
    H=((1.0, 0.4), (0.4, 3.0)),
    center=(2.95, 0.25),
    lams=LAMS,
    penalties: dict = PENALTIES,
) -> dict:
    """``minima[name]``: the penalized minimum for each λ in ``lams`` (a list of [x, y])."""
    return {
        "H": [list(row) for row in H],
        "center": list(center),
        "lams": list(lams),
        "minima": {
            name: penalized_minima(H, center, lams, alpha).tolist()
            for name, alpha in penalties.items()
        },
    }


def _level_set(alpha: float, w) -> tuple[list, list]:
    """The curve α‖v‖₁ + (1 − α)/2 ‖v‖² = (its value at w): a diamond (α = 1), a circle (α = 0)."""
    n = 5 if alpha == 1 else 49  # the diamond's corners, or a smooth curve
    level = alpha * sum(map(abs, w)) + (1 - alpha) / 2 * sum(v * v for v in w)
    t = torch.linspace(0, 2 * torch.pi, n, dtype=torch.float64)
    u = torch.stack(
        [t.cos(), t.sin()]
    )  # unit directions; radius r: α r‖u‖₁ + (1 − α)/2 r² = level
    a, b = alpha * u.abs().sum(0), (1 - alpha) / 2
    r = level / a if b == 0 else ((a * a + 4 * b * level).sqrt() - a) / (2 * b)
    return _rounded(r * u[0], 3), _rounded(r * u[1], 3)


def penalty_figure(data: dict, lam: float = 1.5) -> str:
    """The minima of :func:`penalty_grid` over the contours of the quadratic, with each penalty's
    level set through its minimum; a slider moves λ (starting at ``lam``, which must be in the grid)."""
    H, c = torch.tensor(data["H"]), torch.tensor(data["center"])
    # wider than the axes: equal scales (a circle looks round) widen the x range to fit
    xs, ys = torch.linspace(-1.6, 4.6, 125), torch.linspace(-1.2, 1.2, 49)
    d = torch.stack(torch.meshgrid(xs, ys, indexing="xy"), dim=-1) - c
    fig = go.Figure()
    fig.add_contour(
        x=_rounded(xs, 3),
        y=_rounded(ys, 3),
        z=_rounded(((d @ H) * d).sum(-1).sqrt(), 2),
        contours=dict(coloring="lines", start=0.25, end=4, size=0.25),
        colorscale="Greys",
        showscale=False,
        hoverinfo="skip",
        name="loss",
        showlegend=False,
    )
    for name, minima in data["minima"].items():
        x, y = _rounded([w[0] for w in minima], 3), _rounded([w[1] for w in minima], 3)
        style = dict(legendgroup=name, line_color=_COLORS[name], showlegend=False)
        fig.add_scatter(x=x, y=y, mode="lines", line_dash="dot", **style)
    fig.add_scatter(x=[c[0].item()], y=[c[1].item()], mode="markers", name="no penalty")
    moving = []  # per λ: the level set and the minimum of each penalty
    for k, lam_k in enumerate(data["lams"]):
        x, y = [], []
        for name, alpha in PENALTIES.items():
            w = data["minima"][name][k]
            curve = _level_set(alpha, w)
            x += [curve[0], _rounded([w[0]], 3)]
            y += [curve[1], _rounded([w[1]], 3)]
        zeros = {n: sum(v == 0 for v in m[k]) for n, m in data["minima"].items()}
        title = f"λ = {lam_k:g}: exact zeros " + ", ".join(
            f"{n} {z}" for n, z in zeros.items()
        )
        moving.append(({"x": x, "y": y}, {"title.text": title}))
    first = len(fig.data)
    k0 = data["lams"].index(lam)
    for i, name in enumerate(PENALTIES):
        style = dict(
            legendgroup=name, line_color=_COLORS[name], marker_color=_COLORS[name]
        )
        fig.add_scatter(mode="lines", line_dash="dash", showlegend=False, **style)
        fig.add_scatter(mode="markers", name=name, marker_size=10, **style)
    traces = list(range(first, len(fig.data)))
    for t, x, y in zip(traces, moving[k0][0]["x"], moving[k0][0]["y"]):
        fig.data[t].update(x=x, y=y)
    steps = [
        dict(method="update", label=f"{lam_k:g}", args=[data_k, layout_k, traces])
        for lam_k, (data_k, layout_k) in zip(data["lams"], moving)
    ]
    fig.update_layout(
        title=moving[k0][1]["title.text"],
        height=520,
        template="plotly_white",
        xaxis=dict(range=[-0.6, 3.6], title="w₁"),
        yaxis=dict(range=[-1.1, 1.1], title="w₂", scaleanchor="x"),
        legend=dict(orientation="h", y=1.02, yanchor="bottom", x=1, xanchor="right"),
        margin=dict(l=50, r=20, t=80, b=10),
        sliders=[
            dict(
                steps=steps,
                active=k0,
                y=-0.15,
                len=1.0,
                pad=dict(t=30),
                currentvalue=dict(prefix="λ = "),
            )
        ],
    )
    label = (
        "Contours of a quadratic loss centred at w = (2.95, 0.25) with the minimum of the loss "
        "plus an L1, an L2 and an elastic-net penalty and the level set of each penalty through "
        "it; a slider sets λ. The L1 minimum reaches the axis w₂ = 0 and stays there, the L2 "
        "minimum only shrinks towards the origin."
    )
    return _html(fig, "norm-penalties", label)
