"""Draw the chapter's diagrams as SVG files in this folder (img/).

    .venv/bin/python img/make_figures.py            # all figures
    .venv/bin/python img/make_figures.py rnn lstm   # only some

The output is deterministic: matplotlib draws every glyph as a path (no fonts needed by the
viewer), ``svg.hashsalt`` fixes the ids, and the date is left out of the metadata, so running
the script twice gives byte-identical files (for a given matplotlib version).

Notation follows the chapter: row vectors, weights multiplying from the right,
``H_t = phi(X_t U + H_{t-1} W + b)`` and ``O_t = H_t V + c`` (the introduction's figure
writes ``y_t`` for the output of one sequence). In the gradient figures an arrow that points
backwards is labelled with the matrix the gradient is multiplied by: ``V^T`` from ``O_t``
into ``H_t``, ``W^T`` from ``H_{t+1}`` into ``H_t``. The LSTM and GRU cells follow PyTorch's
documented gate equations.
"""

from __future__ import annotations

import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.patches import Circle, FancyArrowPatch, FancyBboxPatch, Rectangle  # noqa: E402
from matplotlib.path import Path as MPath  # noqa: E402

HERE = Path(__file__).resolve().parent

plt.rcParams.update(
    {
        "svg.hashsalt": "chapter",
        "svg.fonttype": "path",
        "font.family": "STIXGeneral",
        "mathtext.fontset": "stix",
        "font.size": 14,
    }
)

# One palette for every figure: (fill, edge).
INPUT = ("#dcefd6", "#4f8f3a")
HIDDEN = ("#d6e6f5", "#2f6fb0")
OUTPUT = ("#fff1c7", "#b08900")
LOSS = ("#f8d7d7", "#b83232")
PARAM = ("#eeeeee", "#6b6b6b")
SIGMA = ("#fde3c8", "#c46a12")  # sigmoid gate layers
TANH = ("#e4dcf2", "#6a4fa3")  # tanh layers
LINEAR = ("#eeeeee", "#6b6b6b")  # affine layer without activation
CELL_BG = ("#f7f7f4", "#9a9a92")
INK = "#333333"
GREY = "#8a8a8a"
HILITE = "#d9480f"  # the highlight colour (orange-red)
BACKPROP = "#c2255c"  # gradients flowing backwards


# --------------------------------------------------------------------------------------
# Drawing helpers. Every figure uses data coordinates in inches (the axes fill the figure),
# so sizes and font sizes relate directly.
# --------------------------------------------------------------------------------------


def canvas(width, height):
    fig = plt.figure(figsize=(width, height))
    ax = fig.add_axes([0, 0, 1, 1])
    ax.set_xlim(0, width)
    ax.set_ylim(0, height)
    ax.set_aspect("equal")
    ax.axis("off")
    return fig, ax


def save(fig, name):
    path = HERE / f"{name}.svg"
    fig.savefig(path, format="svg", metadata={"Date": None})
    plt.close(fig)
    print(f"wrote {path.relative_to(HERE.parent)}")


def box(ax, x, y, text, colors, w=0.8, h=0.5, lw=1.4, fontsize=15, ec=None, pad=0.06,
        textcolor=INK, zorder=3, rounding=0.08):
    """A rounded box centred at (x, y); returns its bounds (left, right, bottom, top)."""
    fc, edge = colors
    patch = FancyBboxPatch(
        (x - w / 2 + pad, y - h / 2 + pad), w - 2 * pad, h - 2 * pad,
        boxstyle=f"round,pad={pad},rounding_size={rounding}",
        fc=fc, ec=ec or edge, lw=lw, zorder=zorder,
    )
    ax.add_patch(patch)
    if text:
        ax.text(x, y, text, ha="center", va="center", fontsize=fontsize, color=textcolor,
                zorder=zorder + 1)
    return (x - w / 2, x + w / 2, y - h / 2, y + h / 2)


def circle(ax, x, y, text, colors=("white", INK), r=0.17, lw=1.3, fontsize=14, zorder=3):
    fc, ec = colors
    ax.add_patch(Circle((x, y), r, fc=fc, ec=ec, lw=lw, zorder=zorder))
    if text:
        ax.text(x, y, text, ha="center", va="center_baseline", fontsize=fontsize, color=INK,
                zorder=zorder + 1)


def arrow(ax, p, q, color=INK, lw=1.4, head=12, rad=0.0, style="-|>", ls="-", zorder=2,
          shrink=0.0):
    ax.add_patch(
        FancyArrowPatch(
            p, q, arrowstyle=style, mutation_scale=head, color=color, lw=lw, ls=ls,
            connectionstyle=f"arc3,rad={rad}", shrinkA=shrink, shrinkB=shrink, zorder=zorder,
            joinstyle="miter", capstyle="butt",
        )
    )


def polyline(ax, points, color=INK, lw=1.4, head=12, arrowhead=True, zorder=2):
    """A line through ``points`` (right angles welcome), with an arrow head at the end."""
    codes = [MPath.MOVETO] + [MPath.LINETO] * (len(points) - 1)
    style = "-|>" if arrowhead else "-"
    ax.add_patch(
        FancyArrowPatch(
            path=MPath(points, codes), arrowstyle=style, mutation_scale=head, color=color,
            lw=lw, zorder=zorder, joinstyle="miter", capstyle="butt",
        )
    )


def curve(ax, points, color=INK, lw=1.4, head=12, zorder=2):
    """A cubic Bezier (4 control points) with an arrow head at the end."""
    codes = [MPath.MOVETO, MPath.CURVE4, MPath.CURVE4, MPath.CURVE4]
    ax.add_patch(
        FancyArrowPatch(
            path=MPath(points, codes), arrowstyle="-|>", mutation_scale=head, color=color,
            lw=lw, zorder=zorder,
        )
    )


def dot(ax, x, y, color=INK, r=0.035, zorder=4):
    ax.add_patch(Circle((x, y), r, fc=color, ec=color, zorder=zorder))


def label(ax, x, y, text, fontsize=13, color=INK, ha="center", va="center", **kw):
    ax.text(x, y, text, fontsize=fontsize, color=color, ha=ha, va=va, **kw)


# --------------------------------------------------------------------------------------
# img/rnn.svg: (a) the cyclic RNN unit, (b) the same network unrolled over time.
# --------------------------------------------------------------------------------------


def fig_rnn():
    fig, ax = canvas(10.1, 4.3)
    yx, yh, yy = 0.95, 2.25, 3.55
    w, h = 0.9, 0.55

    def column(c, s):
        """x_s -> h_s -> y_s at horizontal position c, with the shared weights U and V."""
        box(ax, c, yx, rf"$\mathbf{{x}}_{{{s}}}$", INPUT, w, h)
        box(ax, c, yh, rf"$\mathbf{{h}}_{{{s}}}$", HIDDEN, w, h)
        box(ax, c, yy, rf"$\mathbf{{y}}_{{{s}}}$", OUTPUT, w, h)
        arrow(ax, (c, yx + h / 2), (c, yh - h / 2))
        arrow(ax, (c, yh + h / 2), (c, yy - h / 2))
        label(ax, c - 0.17, (yx + yh) / 2, r"$U$", ha="right", fontsize=15)
        label(ax, c - 0.17, (yh + yy) / 2, r"$V$", ha="right", fontsize=15)

    # (a) cyclic
    cx = 0.85
    column(cx, "t")
    # self loop on h: leaves the right side, comes back to the right side
    r = cx + w / 2
    curve(ax, [(r, yh + 0.12), (r + 0.95, yh + 0.75), (r + 0.95, yh - 0.75), (r, yh - 0.12)],
          color=HIDDEN[1], lw=1.6)
    label(ax, r + 0.82, yh, r"$W$", ha="left", fontsize=15)
    label(ax, cx + 0.3, 0.22, "(a) cyclic", fontsize=15)

    # unfold arrow
    ax.add_patch(FancyArrowPatch((2.7, yh), (3.4, yh), arrowstyle="simple,head_width=0.9,"
                                 "head_length=0.7,tail_width=0.35", mutation_scale=22,
                                 fc="#bdbdbd", ec="#9a9a9a", lw=1.0, zorder=2))
    label(ax, 3.05, yh + 0.42, "unfold", fontsize=13, color=GREY)

    # (b) unrolled
    cols = [5.15, 6.95, 8.75]
    subs = ["t-1", "t", "t+1"]
    for c, s in zip(cols, subs):
        column(c, s)
    left_in = cols[0] - w / 2 - 0.75
    label(ax, left_in - 0.12, yh, r"$\cdots$", ha="right", fontsize=16)
    arrow(ax, (left_in, yh), (cols[0] - w / 2, yh), color=HIDDEN[1], lw=1.6)
    label(ax, (left_in + cols[0] - w / 2) / 2, yh + 0.2, r"$W$", fontsize=15)
    for a, b in zip(cols[:-1], cols[1:]):
        arrow(ax, (a + w / 2, yh), (b - w / 2, yh), color=HIDDEN[1], lw=1.6)
        label(ax, (a + b) / 2, yh + 0.2, r"$W$", fontsize=15)
    right_out = cols[-1] + w / 2 + 0.45
    arrow(ax, (cols[-1] + w / 2, yh), (right_out, yh), color=HIDDEN[1], lw=1.6)
    label(ax, right_out + 0.08, yh, r"$\cdots$", ha="left", fontsize=16)
    label(ax, cols[1], 0.22, "(b) unrolled: the same $U$, $W$, $V$ at every time step",
          fontsize=15)
    save(fig, "rnn")


# --------------------------------------------------------------------------------------
# img/bptt-graph.svg: the computational graph used to derive BPTT.
# --------------------------------------------------------------------------------------


def fig_bptt_graph():
    fig, ax = canvas(9.6, 6.2)
    cols = [1.9, 4.9, 7.9]
    subs = ["t-1", "t", "t+1"]
    yx, yh, yy, yl = 0.75, 2.45, 3.95, 5.3
    w, h = 1.0, 0.58
    P = 0.2  # radius of parameter circles
    focus = ("#fbd3bd", HILITE)  # H_t itself

    for i, (c, s) in enumerate(zip(cols, subs)):
        centre, child = i == 1, i == 2  # H_{t+1} is computed from H_t
        box(ax, c, yx, rf"$X_{{{s}}}$", INPUT, w, h)
        if centre:
            box(ax, c, yh, rf"$H_{{{s}}}$", focus, w, h, lw=2.4)
        else:
            box(ax, c, yh, rf"$H_{{{s}}}$", HIDDEN, w, h, ec=HILITE if child else None,
                lw=2.4 if child else 1.4)
        box(ax, c, yy, rf"$O_{{{s}}}$", OUTPUT, w, h, ec=HILITE if centre else None,
            lw=2.4 if centre else 1.4)
        box(ax, c, yl, rf"$L_{{{s}}}$", LOSS, w, h)
        arrow(ax, (c, yx + h / 2), (c, yh - h / 2))
        arrow(ax, (c, yh + h / 2), (c, yy - h / 2), color=HILITE if centre else INK,
              lw=2.2 if centre else 1.4)
        arrow(ax, (c, yy + h / 2), (c, yl - h / 2))
        # parameters: U and b feed H (together with X); V feeds O (together with H)
        pu = (c - 0.85, (yx + yh) / 2)
        pb = (c + 0.85, (yx + yh) / 2)
        pv = (c + 0.85, (yh + yy) / 2)
        circle(ax, *pu, r"$U$", PARAM, r=P)
        circle(ax, *pb, r"$b$", PARAM, r=P)
        circle(ax, *pv, r"$V$", PARAM, r=P)
        arrow(ax, (pu[0] + P * 0.7, pu[1] + P * 0.7), (c - w / 2 + 0.12, yh - h / 2), lw=1.1,
              head=10, color=PARAM[1])
        arrow(ax, (pb[0] - P * 0.7, pb[1] + P * 0.7), (c + w / 2 - 0.12, yh - h / 2), lw=1.1,
              head=10, color=PARAM[1])
        arrow(ax, (pv[0] - P * 0.7, pv[1] + P * 0.7), (c + w / 2 - 0.12, yy - h / 2), lw=1.1,
              head=10, color=PARAM[1])

    def recurrent(x0, x1, color=INK, lw=1.4):
        """H_{s-1} -> H_s, with the shared recurrent weight W feeding H_s."""
        arrow(ax, (x0, yh), (x1, yh), color=color, lw=lw)
        pw = (x1 - 0.7, yh + 0.75)
        circle(ax, *pw, r"$W$", PARAM, r=P)
        arrow(ax, (pw[0] + P * 0.7, pw[1] - P * 0.7), (x1, yh + h / 2 - 0.1), lw=1.1, head=10,
              color=PARAM[1])

    label(ax, 0.28, yh, r"$\cdots$", fontsize=16)
    recurrent(0.5, cols[0] - w / 2)
    recurrent(cols[0] + w / 2, cols[1] - w / 2)
    recurrent(cols[1] + w / 2, cols[2] - w / 2, color=HILITE, lw=2.2)
    arrow(ax, (cols[2] + w / 2, yh), (9.2, yh))
    label(ax, 9.38, yh, r"$\cdots$", fontsize=16)

    # legend
    ly = 5.98
    box(ax, 0.45, ly, "", HIDDEN, 0.42, 0.3, rounding=0.05, pad=0.03)
    label(ax, 0.75, ly, "variable", ha="left", fontsize=13)
    circle(ax, 1.85, ly, "", PARAM, r=0.14)
    label(ax, 2.07, ly, "parameter (shared)", ha="left", fontsize=13)
    box(ax, 4.35, ly, "", focus, 0.42, 0.3, lw=2.2, rounding=0.05, pad=0.03)
    label(ax, 4.65, ly, r"$H_t$", ha="left", fontsize=13)
    box(ax, 5.55, ly, "", ("white", HILITE), 0.42, 0.3, lw=2.2, rounding=0.05, pad=0.03)
    label(ax, 5.85, ly, r"computed directly from $H_t$", ha="left", fontsize=13)
    save(fig, "bptt-graph")


# --------------------------------------------------------------------------------------
# img/gradient-paths.svg: the path from L_{t+kappa} back to H_t has kappa recurrent steps.
# --------------------------------------------------------------------------------------


def fig_gradient_paths():
    nrows = 5  # kappa = 0, 1, 2, 3 and the general case
    dy = 1.0
    bottom = 0.95
    top = bottom + dy * nrows
    fig, ax = canvas(10.4, top + 0.45)
    w, h = 0.86, 0.5
    step = 1.12
    x0 = 1.2
    fx = 9.15  # formula column

    label(ax, 0.3, top, r"$\kappa$", fontsize=16)
    label(ax, x0 - 0.43, top, "path from the loss back to $H_t$ (gradients flow right to left)",
          fontsize=14, ha="left")
    label(ax, fx, top, r"$\partial L_{t+\kappa} / \partial H_t \;\propto$", fontsize=15)

    def draw_row(y, kappa):
        general = kappa is None
        label(ax, 0.3, y, r"$\kappa$" if general else f"{kappa}", fontsize=16)
        if general:
            names = [r"$H_t$", r"$H_{t+1}$", None, r"$H_{t+\kappa}$", r"$O_{t+\kappa}$",
                     r"$L_{t+\kappa}$"]
        else:
            sub = f"t+{kappa}" if kappa else "t"
            names = [r"$H_t$"] + [rf"$H_{{t+{j}}}$" for j in range(1, kappa + 1)]
            names += [rf"$O_{{{sub}}}$", rf"$L_{{{sub}}}$"]
        xs = [x0 + i * step for i in range(len(names))]
        for x, n in zip(xs, names):
            if n is None:
                label(ax, x, y, r"$\cdots$", fontsize=18)
                continue
            colors = HIDDEN if n.startswith("$H") else (OUTPUT if n.startswith("$O") else LOSS)
            box(ax, x, y, n, colors, w, h, fontsize=14)
        # backward arrows, right to left, each labelled with the matrix it multiplies by
        for i in range(len(xs) - 1, 0, -1):
            a, b = xs[i], xs[i - 1]
            ra = w / 2 if names[i] else 0.25
            rb = w / 2 if names[i - 1] else 0.25
            arrow(ax, (a - ra, y), (b + rb, y), color=BACKPROP, lw=1.7)
            src = names[i]
            if names[i - 1] is None or src is None or src.startswith("$L"):
                continue
            mat = r"$V^\top$" if src.startswith("$O") else r"$W^\top$"
            label(ax, (a + b) / 2, y + 0.28, mat, fontsize=13, color=BACKPROP)
        if general:
            formula = r"$V^\top (W^\top)^{\kappa}$"
        else:
            formula = {0: r"$V^\top$", 1: r"$V^\top W^\top$"}.get(
                kappa, rf"$V^\top (W^\top)^{{{kappa}}}$")
        label(ax, fx, y, formula, fontsize=16)

    for k in range(nrows - 1):
        draw_row(top - dy * (k + 1), k)
    draw_row(top - dy * nrows, None)
    ax.plot([0.1, 10.3], [top - 0.4, top - 0.4], color="#cccccc", lw=1.0)
    ax.plot([8.05, 8.05], [0.1, top + 0.3], color="#cccccc", lw=1.0)
    label(ax, fx, 0.35, "each $W^\\top$ also comes with\na factor $\\mathrm{diag}(\\phi')$",
          fontsize=12, color=GREY, linespacing=1.3)
    label(ax, x0 - 0.43, 0.35, r"length of the path through the hidden states: $\kappa$ steps;"
          r" every step multiplies the gradient by $W^\top$", fontsize=12, color=GREY, ha="left")
    save(fig, "gradient-paths")


# --------------------------------------------------------------------------------------
# img/context-window.svg: a fixed window of tau = 3 characters predicts the next one.
# --------------------------------------------------------------------------------------


def fig_context_window():
    fig, ax = canvas(9.9, 5.1)
    # the surname "garcia", padded with tau boundary tokens "." in front and one behind
    chars = [".", ".", ".", "g", "a", "r", "c", "i", "a", "."]
    cw, y = 0.62, 4.35
    x_start = 1.15
    xs = [x_start + i * cw for i in range(len(chars))]
    win = [3, 4, 5]  # "g", "a", "r"
    target = 6  # "c"
    for i, (x, ch) in enumerate(zip(xs, chars)):
        if i in win:
            colors, tc = INPUT, INK
        elif i == target:
            colors, tc = ("white", HILITE), HILITE
        else:
            colors, tc = ("#f3f3f3", "#bdbdbd"), "#a0a0a0"
        ax.add_patch(Rectangle((x - cw / 2, y - 0.3), cw, 0.6, fc=colors[0], ec=colors[1],
                               lw=1.4 if i != target else 2.0, zorder=2,
                               ls="--" if i == target else "-"))
        label(ax, x, y, "?" if i == target else ch, fontsize=20, color=tc,
              family="DejaVu Sans Mono")
        if i == target:
            label(ax, x, y - 0.55, r"$x_t$", fontsize=15, color=HILITE)
    # window bracket
    left, right = xs[win[0]] - cw / 2 - 0.06, xs[win[-1]] + cw / 2 + 0.06
    ax.add_patch(FancyBboxPatch((left, y - 0.38), right - left, 0.76,
                                boxstyle="round,pad=0,rounding_size=0.1", fc="none",
                                ec=INPUT[1], lw=2.4, zorder=3))
    label(ax, (left + right) / 2, y + 0.6, r"window of $\tau = 3$ characters", fontsize=14,
          color=INPUT[1])
    for i, s in zip(win, ["t-3", "t-2", "t-1"]):
        label(ax, xs[i], y - 0.55, rf"$x_{{{s}}}$", fontsize=14)
    label(ax, xs[1], y - 0.55, "ignored", fontsize=12, color="#a0a0a0")
    label(ax, 0.15, y, "name:", fontsize=14, ha="left", color=GREY)

    # model
    mx, my = (left + right) / 2, 2.55
    arrow(ax, ((left + right) / 2, y - 0.78), (mx, my + 0.42), lw=1.6)
    box(ax, mx, my, "model\n(MLP or causal CNN)", PARAM, 2.3, 0.8, fontsize=14)
    label(ax, mx - 1.3, 3.22, "look up and concatenate\n3 embeddings", fontsize=12,
          color=GREY, ha="right")

    # next-character distribution as a bar chart
    # relative frequencies of the character after "gar", counted over the unique surnames
    # of the INE list (1,216 occurrences); "." ends the name
    probs = [("c", 0.467), ("a", 0.110), ("r", 0.102), ("i", 0.062), (".", 0.036),
             ("t", 0.035), ("d", 0.032), ("others", 0.156)]
    bx0, by0, bw, scale = 5.7, 0.6, 0.42, 4.0
    arrow(ax, (mx + 1.15, my), (bx0 - 0.2, my), lw=1.6)
    label(ax, (mx + 1.15 + bx0 - 0.2) / 2, my + 0.26, "softmax", fontsize=12, color=GREY)
    for i, (ch, p) in enumerate(probs):
        x = bx0 + i * (bw + 0.08)
        col = HILITE if ch == "c" else "#9bb7d4"
        ax.add_patch(Rectangle((x, by0), bw, p * scale, fc=col, ec="none", zorder=2))
        if ch == "others":
            label(ax, x + bw / 2, by0 - 0.22, "…", fontsize=14)
        else:
            label(ax, x + bw / 2, by0 - 0.22, ch, fontsize=16, family="DejaVu Sans Mono")
    ax.plot([bx0 - 0.08, bx0 + len(probs) * (bw + 0.08)], [by0, by0], color=INK, lw=1.0)
    label(ax, bx0 + 2.0, by0 + 0.467 * scale + 0.3,
          r"$p(x_t \mid x_{t-3}, x_{t-2}, x_{t-1})$", fontsize=15)
    label(ax, 0.2, 0.85, "slide the window one step\nto get the next example:\n"
          "(...→g), (..g→a), (.ga→r), (gar→c), …", fontsize=12, color=GREY, ha="left", va="center",
          linespacing=1.5)
    save(fig, "context-window")


# --------------------------------------------------------------------------------------
# Gated cells. Rectangles are affine layers with an activation, circles element-wise ops.
# --------------------------------------------------------------------------------------


def cell_legend(ax, x, y, affine_only=False):
    box(ax, x, y, r"$\sigma$", SIGMA, 0.46, 0.36, fontsize=13, pad=0.03)
    label(ax, x + 0.3, y, "affine + activation", ha="left", fontsize=12)
    x += 2.05
    if affine_only:
        box(ax, x, y, "", LINEAR, 0.46, 0.36, pad=0.03)
        label(ax, x + 0.3, y, "affine only", ha="left", fontsize=12)
        x += 1.45
    circle(ax, x, y, r"$\odot$", r=0.13, fontsize=12)
    label(ax, x + 0.22, y, "element-wise", ha="left", fontsize=12)
    x += 1.5
    dot(ax, x, y)
    label(ax, x + 0.15, y, "copy", ha="left", fontsize=12)
    x += 0.85
    ax.plot([x - 0.12, x + 0.12], [y - 0.12, y + 0.12], color=INK, lw=1.2)
    label(ax, x + 0.25, y, "concatenate", ha="left", fontsize=12)


def cell_background(ax, x0, x1, y0=0.95, y1=5.0):
    ax.add_patch(FancyBboxPatch((x0, y0), x1 - x0, y1 - y0,
                                boxstyle="round,pad=0,rounding_size=0.25",
                                fc=CELL_BG[0], ec=CELL_BG[1], lw=1.3, zorder=0))


def fig_lstm():
    """PyTorch's LSTM: i, f, g, o from [x_t, h_{t-1}]; c_t = f*c_{t-1} + i*g; h_t = o*tanh(c_t)."""
    fig, ax = canvas(9.8, 5.9)
    cell_background(ax, 1.25, 8.35)
    yc, ybus, ygate = 4.35, 1.45, 2.45
    gx = [2.35, 3.55, 4.75, 6.25]  # f, i, g, o
    names = [r"$\mathbf{f}_t$", r"$\mathbf{i}_t$", r"$\mathbf{g}_t$", r"$\mathbf{o}_t$"]
    kinds = [SIGMA, SIGMA, TANH, SIGMA]
    acts = [r"$\sigma$", r"$\sigma$", r"$\tanh$", r"$\sigma$"]
    gw, gh = 0.8, 0.5

    # memory cell line: c_{t-1} -> (* f_t) -> (+ i_t * g_t) -> c_t
    label(ax, 0.45, yc, r"$\mathbf{c}_{t-1}$", fontsize=16)
    fx, ix = gx[0], gx[2]
    arrow(ax, (0.8, yc), (fx - 0.17, yc), lw=2.2)
    circle(ax, fx, yc, r"$\odot$")
    arrow(ax, (fx + 0.17, yc), (ix - 0.17, yc), lw=2.2)
    circle(ax, ix, yc, r"$+$")
    arrow(ax, (ix + 0.17, yc), (9.15, yc), lw=2.2)
    label(ax, 9.45, yc, r"$\mathbf{c}_t$", fontsize=16)

    # inputs: h_{t-1} from the left, x_t from below, concatenated into one bus
    label(ax, 0.45, ybus, r"$\mathbf{h}_{t-1}$", fontsize=16)
    jx = 1.75
    polyline(ax, [(0.85, ybus), (jx, ybus)], arrowhead=False)
    label(ax, jx, 0.3, r"$\mathbf{x}_t$", fontsize=16)
    polyline(ax, [(jx, 0.5), (jx, ybus)], arrowhead=False)
    ax.plot([jx - 0.12, jx + 0.12], [ybus - 0.12, ybus + 0.12], color=INK, lw=1.2, zorder=4)
    polyline(ax, [(jx, ybus), (gx[-1], ybus)], arrowhead=False)
    for x in gx:
        dot(ax, x, ybus)
        arrow(ax, (x, ybus), (x, ygate - gh / 2))
    for x, k, a, n in zip(gx, kinds, acts, names):
        box(ax, x, ygate, a, k, gw, gh, fontsize=15)
        label(ax, x + 0.17, ygate + gh / 2 + 0.22, n, ha="left", fontsize=15)

    # f_t scales the old memory; i_t * g_t is added to it
    arrow(ax, (fx, ygate + gh / 2), (fx, yc - 0.17))
    mx, my = gx[2], 3.45
    circle(ax, mx, my, r"$\odot$")
    polyline(ax, [(gx[1], ygate + gh / 2), (gx[1], my), (mx - 0.17, my)])
    arrow(ax, (gx[2], ygate + gh / 2), (mx, my - 0.17))
    arrow(ax, (mx, my + 0.17), (ix, yc - 0.17))

    # h_t = o_t * tanh(c_t)
    tx = 7.35
    dot(ax, tx, yc)
    box(ax, tx, 3.6, r"$\tanh$", TANH, 0.8, 0.42, fontsize=14, rounding=0.2)
    arrow(ax, (tx, yc), (tx, 3.6 + 0.21))
    ox, oy = tx, ygate
    circle(ax, ox, oy, r"$\odot$")
    arrow(ax, (tx, 3.6 - 0.21), (ox, oy + 0.17))
    arrow(ax, (gx[3] + gw / 2, ygate), (ox - 0.17, oy))
    polyline(ax, [(ox, oy - 0.17), (ox, ybus), (9.15, ybus)], lw=2.0)
    label(ax, 9.45, ybus, r"$\mathbf{h}_t$", fontsize=16)
    # a copy of h_t goes up as this step's output; it passes under the memory line
    hx = 7.95
    dot(ax, hx, ybus)
    polyline(ax, [(hx, ybus), (hx, yc - 0.1)], arrowhead=False)
    arrow(ax, (hx, yc + 0.1), (hx, 5.5))
    label(ax, hx, 5.68, r"$\mathbf{h}_t$ (output)", fontsize=14)

    cell_legend(ax, 2.75, 0.3)
    save(fig, "lstm")


def fig_gru():
    """PyTorch's GRU: r, z from [x_t, h_{t-1}]; n = tanh(W_in x + b_in + r * (W_hn h + b_hn));
    h_t = (1 - z) * n + z * h_{t-1}."""
    fig, ax = canvas(9.8, 5.9)
    cell_background(ax, 1.25, 8.35)
    yt, ybus, ylow, ygate = 4.35, 1.45, 1.15, 2.1
    jx, rx, zx = 1.75, 2.85, 6.3  # junction, reset gate, update gate
    hn_x, nx, addx = 3.95, 5.15, 7.35  # W_hn column, candidate column, final sum

    # top line: h_{t-1} -> (* z_t) -> (+ (1 - z_t) * n_t) -> h_t
    label(ax, 0.45, yt, r"$\mathbf{h}_{t-1}$", fontsize=16)
    arrow(ax, (0.85, yt), (zx - 0.17, yt), lw=2.2)
    circle(ax, zx, yt, r"$\odot$")
    arrow(ax, (zx + 0.17, yt), (addx - 0.17, yt), lw=2.2)
    circle(ax, addx, yt, r"$+$")
    arrow(ax, (addx + 0.17, yt), (9.15, yt), lw=2.2)
    label(ax, 9.45, yt, r"$\mathbf{h}_t$", fontsize=16)
    hx = 7.95
    dot(ax, hx, yt)
    arrow(ax, (hx, yt), (hx, 5.5))
    label(ax, hx, 5.68, r"$\mathbf{h}_t$ (output)", fontsize=14)

    # gates r_t and z_t read the concatenation of x_t and h_{t-1}
    dot(ax, jx, yt)
    polyline(ax, [(jx, yt), (jx, ybus)], arrowhead=False)
    label(ax, jx, 0.3, r"$\mathbf{x}_t$", fontsize=16)
    polyline(ax, [(jx, 0.5), (jx, ybus)], arrowhead=False)
    ax.plot([jx - 0.12, jx + 0.12], [ybus - 0.12, ybus + 0.12], color=INK, lw=1.2, zorder=4)
    polyline(ax, [(jx, ybus), (zx, ybus)], arrowhead=False)
    for x in (rx, zx):
        dot(ax, x, ybus)
        arrow(ax, (x, ybus), (x, ygate - 0.25))
        box(ax, x, ygate, r"$\sigma$", SIGMA, 0.8, 0.5)
    label(ax, rx + 0.47, ygate - 0.05, r"$\mathbf{r}_t$", fontsize=15, ha="left")
    label(ax, zx + 0.47, ygate - 0.05, r"$\mathbf{z}_t$", fontsize=15, ha="left")

    # candidate: n_t = tanh(W_in x_t + b_in + r_t * (W_hn h_{t-1} + b_hn))
    ym = 2.85  # row of the reset product and the sum
    dot(ax, hn_x, yt)
    arrow(ax, (hn_x, yt), (hn_x, 3.6 + 0.25))
    box(ax, hn_x, 3.6, r"$W_{hn}$", LINEAR, 0.9, 0.5, fontsize=14)
    circle(ax, hn_x, ym, r"$\odot$")
    arrow(ax, (hn_x, 3.6 - 0.25), (hn_x, ym + 0.17))
    polyline(ax, [(rx, ygate + 0.25), (rx, ym), (hn_x - 0.17, ym)])
    # x_t alone feeds W_in; its line passes under the gate bus
    dot(ax, jx, ylow)
    polyline(ax, [(jx, ylow), (nx, ylow), (nx, ybus - 0.09)], arrowhead=False)
    arrow(ax, (nx, ybus + 0.09), (nx, 2.05 - 0.25))
    box(ax, nx, 2.05, r"$W_{in}$", LINEAR, 0.9, 0.5, fontsize=14)
    circle(ax, nx, ym, r"$+$")
    arrow(ax, (hn_x + 0.17, ym), (nx - 0.17, ym))
    arrow(ax, (nx, 2.05 + 0.25), (nx, ym - 0.17))
    box(ax, nx, 3.6, r"$\tanh$", TANH, 0.8, 0.46, fontsize=14)
    arrow(ax, (nx, ym + 0.17), (nx, 3.6 - 0.23))
    label(ax, nx + 0.2, 3.6 + 0.42, r"$\mathbf{n}_t$", fontsize=15, ha="left")

    # z_t scales the old state; (1 - z_t) scales the candidate; the two are added
    arrow(ax, (zx, ygate + 0.25), (zx, yt - 0.17))
    yo = 2.85
    dot(ax, zx, yo)
    circle(ax, 6.85, yo, r"$1-$", r=0.21, fontsize=12)
    arrow(ax, (zx, yo), (6.85 - 0.21, yo))
    mul = (addx, 3.6)
    circle(ax, *mul, r"$\odot$")
    polyline(ax, [(6.85 + 0.21, yo), (addx, yo), (addx, mul[1] - 0.17)])
    # n_t crosses over the z_t line to reach the product
    polyline(ax, [(nx + 0.4, 3.6), (zx - 0.09, 3.6)], arrowhead=False)
    arrow(ax, (zx + 0.09, 3.6), (addx - 0.17, 3.6))
    arrow(ax, (mul[0], mul[1] + 0.17), (addx, yt - 0.17))

    cell_legend(ax, 2.4, 0.3, affine_only=True)
    save(fig, "gru")


# --------------------------------------------------------------------------------------
# img/batching.svg: sequential partitioning against random sampling, on the toy text 0..34
# with num_steps = 5 and batch size 2, the very batches notebook 01 prints.
# --------------------------------------------------------------------------------------

BATCH_COLORS = ["#9bb7d4", "#f2b880", "#a9d39e"]  # batch 1, 2, 3


def _token_strip(ax, x0, y, owner, cw=0.27, h=0.34):
    """The text 0..34 as a strip of cells, each coloured by the batch that reads it (None: unused)."""
    for t in range(35):
        b = owner.get(t)
        ax.add_patch(Rectangle((x0 + t * cw, y), cw, h, fc=BATCH_COLORS[b] if b is not None else "#f3f3f3",
                               ec="white" if b is not None else "#d0d0d0", lw=0.8, zorder=2))
        label(ax, x0 + (t + 0.5) * cw, y + h / 2, str(t), fontsize=8, color=INK if b is not None else "#a0a0a0")


def _batch_grid(ax, x0, y_top, rows, b, cw=0.27, h=0.3, title=""):
    """One batch, X.T as the notebook prints it: a row per stream, num_steps tokens per row."""
    for r, tokens in enumerate(rows):
        y = y_top - r * (h + 0.06)
        for j, t in enumerate(tokens):
            ax.add_patch(Rectangle((x0 + j * cw, y), cw, h, fc=BATCH_COLORS[b], ec="white", lw=0.8, zorder=2))
            label(ax, x0 + (j + 0.5) * cw, y + h / 2, str(t), fontsize=8)
    label(ax, x0 + len(rows[0]) * cw / 2, y_top + h + 0.2, title, fontsize=12)


def fig_batching():
    fig, ax = canvas(10.4, 6.6)
    seq = [[list(range(0, 5)), list(range(15, 20))], [list(range(5, 10)), list(range(20, 25))],
           [list(range(10, 15)), list(range(25, 30))]]
    rnd = [[list(range(19, 24)), list(range(24, 29))], [list(range(14, 19)), list(range(9, 14))],
           [list(range(29, 34)), list(range(4, 9))]]
    for panel, (batches, y0, name, note) in enumerate([
            (seq, 6.05, "sequential partitioning", "row $b$ of each batch continues row $b$ of the last one:\n"
                                                     "the state is carried over (and detached)"),
            (rnd, 2.95, "random sampling (random offset 4, pieces shuffled)",
             "neighbouring pieces come from unrelated places:\nevery batch starts from a zero state")]):
        owner = {t: b for b, rows in enumerate(batches) for row in rows for t in row}
        label(ax, 0.3, y0, name, fontsize=14, ha="left", color=INK)
        _token_strip(ax, 0.5, y0 - 0.75, owner)
        label(ax, 0.5 + 35 * 0.27 + 0.1, y0 - 0.58, "text", fontsize=11, color=GREY, ha="left")
        xs = [0.9, 3.9, 6.9]
        for b, rows in enumerate(batches):
            _batch_grid(ax, xs[b], y0 - 1.95, rows, b, title=f"batch {b + 1}")
        if panel == 0:  # the state flows from each row to the same row of the next batch
            for b in range(2):
                for r in range(2):
                    y = y0 - 1.95 - r * 0.36 + 0.15
                    arrow(ax, (xs[b] + 5 * 0.27 + 0.08, y), (xs[b + 1] - 0.08, y), color=HIDDEN[1], lw=1.5,
                          head=9)
            label(ax, (xs[0] + 5 * 0.27 + xs[1]) / 2, y0 - 1.95 + 0.52, r"state $\mathbf{H}$", fontsize=12,
                  color=HIDDEN[1])
        else:
            for b in range(3):
                label(ax, xs[b] - 0.28, y0 - 1.95 - 0.03, r"$\mathbf{0}$", fontsize=13, color=HIDDEN[1])
        label(ax, 0.3, y0 - 2.65, note, fontsize=11, color=GREY, ha="left", va="center", linespacing=1.4)
    save(fig, "batching")


# --------------------------------------------------------------------------------------
# img/truncation.svg: truncated BPTT with k = 4: the state flows on, the gradient stops at
# every boundary.
# --------------------------------------------------------------------------------------


def fig_truncation():
    fig, ax = canvas(10.4, 4.4)
    k, n = 4, 8
    xs = [1.0 + i * 1.15 for i in range(n)]
    yh, yl, w, h = 1.7, 3.2, 0.8, 0.5
    for i, x in enumerate(xs):
        box(ax, x, yh, rf"$H_{{{i + 1}}}$", HIDDEN, w, h)
        box(ax, x, yl, rf"$L_{{{i + 1}}}$", LOSS, w, h)
        arrow(ax, (x, yh + h / 2), (x, yl - h / 2))
        if i + 1 < n:
            arrow(ax, (x + w / 2, yh + 0.07), (xs[i + 1] - w / 2, yh + 0.07))  # the state, carried on
            if (i + 1) % k:  # within a piece the gradient flows back
                arrow(ax, (xs[i + 1] - w / 2, yh - 0.12), (x + w / 2, yh - 0.12), color=BACKPROP, lw=1.6)
    for i in range(k, n, k):  # the boundaries: detach
        xb = (xs[i - 1] + xs[i]) / 2
        ax.plot([xb, xb], [0.55, 3.75], color=GREY, lw=1.3, ls=(0, (4, 3)), zorder=1)
        label(ax, xb, 0.35, "detach", fontsize=12, color=GREY)
    label(ax, 0.2, yh, r"$\cdots$", fontsize=16)
    for j in range(n // k):
        x0, x1 = xs[j * k] - w / 2, xs[j * k + k - 1] + w / 2
        ax.plot([x0, x0, x1, x1], [3.75, 3.85, 3.85, 3.75], color=INK, lw=1.0)
        label(ax, (x0 + x1) / 2, 4.1, f"piece {j + 1}: {k} steps", fontsize=12)
    arrow(ax, (0.5, 0.8), (1.2, 0.8))
    label(ax, 1.3, 0.8, "the state: carried on", fontsize=11, ha="left")
    arrow(ax, (1.2, 0.4), (0.5, 0.4), color=BACKPROP, lw=1.6)
    label(ax, 1.3, 0.4, "the gradient: stops at a boundary", fontsize=11, color=BACKPROP, ha="left")
    save(fig, "truncation")


# --------------------------------------------------------------------------------------
# img/bidirectional.svg: two recurrences read the sequence in opposite directions; the
# output at t joins both states.
# --------------------------------------------------------------------------------------


def fig_bidirectional():
    fig, ax = canvas(9.4, 5.0)
    xs = [1.6 + i * 2.0 for i in range(4)]
    yx, yf, yb, yo, w, h = 0.6, 1.9, 3.0, 4.3, 0.95, 0.5
    back = ("#f1e1ea", BACKPROP)
    for i, x in enumerate(xs):
        box(ax, x, yx, rf"$x_{{{i + 1}}}$", INPUT, w, h)
        box(ax, x, yf, rf"$\overrightarrow{{h}}_{{{i + 1}}}$", HIDDEN, w, h)
        box(ax, x, yb, rf"$\overleftarrow{{h}}_{{{i + 1}}}$", back, w, h)
        box(ax, x, yo, rf"$y_{{{i + 1}}}$", OUTPUT, w, h)
        arrow(ax, (x, yx + h / 2), (x, yf - h / 2))
        curve(ax, [(x - w / 2 + 0.05, yx + 0.1), (x - 0.85, yx + 0.9), (x - 0.85, yb - 0.4),
                   (x - w / 2 + 0.05, yb - 0.12)], lw=1.1)  # x_t also feeds the backward cell
        polyline(ax, [(x + w / 2 - 0.05, yf + 0.1), (x + 0.62, yf + 0.1), (x + 0.62, yo - 0.2),
                      (x + w / 2 - 0.05, yo - 0.2)], lw=1.1)  # the forward state into y_t
        arrow(ax, (x, yb + h / 2), (x, yo - h / 2))
        if i + 1 < len(xs):
            arrow(ax, (x + w / 2, yf), (xs[i + 1] - w / 2, yf), color=HIDDEN[1], lw=1.6)
            arrow(ax, (xs[i + 1] - w / 2, yb), (x + w / 2, yb), color=BACKPROP, lw=1.6)
    label(ax, 0.45, yf, "left to right", fontsize=11, color=HIDDEN[1])
    label(ax, 0.45, yb, "right to left", fontsize=11, color=BACKPROP)
    label(ax, xs[-1] + 0.3, yo + 0.5,
          r"$y_t$ reads $[\overrightarrow{h}_t, \overleftarrow{h}_t]$: all of $x_1 \ldots x_T$", fontsize=12,
          ha="right")
    save(fig, "bidirectional")


# --------------------------------------------------------------------------------------
# img/recall.svg: the recall task: a symbol, k - 1 distractors, the query; the only target.
# --------------------------------------------------------------------------------------


def fig_recall():
    fig, ax = canvas(9.6, 3.6)
    tokens = ["5", "12", "9", "15", "10", "11", "?"]  # symbol 5, distractors, the query (k = 6)
    xs = [1.0 + i * 1.1 for i in range(len(tokens))]
    y, w, h = 1.5, 0.7, 0.55
    for i, (x, t) in enumerate(zip(xs, tokens)):
        colors = (("#fbd3bd", HILITE) if i == 0 else ("white", INK) if t == "?" else ("#f3f3f3", GREY))
        box(ax, x, y, t, colors, w, h, fontsize=16, lw=2.2 if i in (0, len(tokens) - 1) else 1.2)
        label(ax, x, y - 0.55, rf"$x_{{{i}}}$" if i < len(tokens) - 1 else r"$x_k$", fontsize=13)
    label(ax, xs[0], y + 0.55, "symbol", fontsize=12, color=HILITE)
    label(ax, (xs[1] + xs[-2]) / 2, y + 0.55, "distractors", fontsize=12, color=GREY)
    label(ax, xs[-1], y + 0.55, "query", fontsize=12)
    box(ax, xs[-1] + 1.3, y, "5", OUTPUT, w, h, fontsize=16)
    arrow(ax, (xs[-1] + w / 2, y), (xs[-1] + 1.3 - w / 2, y), lw=1.6)
    label(ax, xs[-1] + 1.3, y - 0.55, "target", fontsize=12)
    curve(ax, [(xs[-1], y + 0.85), (xs[-1] - 1.5, y + 1.75), (xs[0] + 1.5, y + 1.75), (xs[0], y + 0.85)],
          color=BACKPROP, lw=1.8)
    label(ax, (xs[0] + xs[-1]) / 2, y + 1.85, "the only gradient travels back $k$ steps", fontsize=13,
          color=BACKPROP)
    label(ax, 0.25, 0.35, "every other position has no target; a model that cannot carry the symbol over "
          "$k$ steps guesses: 1/8", fontsize=11, color=GREY, ha="left")
    save(fig, "recall")


# --------------------------------------------------------------------------------------
# img/seq2seq.svg: the encoder reads "quince"; its last state c starts the decoder, which
# writes "15" and the boundary, reading its own previous output.
# --------------------------------------------------------------------------------------


def fig_seq2seq():
    fig, ax = canvas(10.6, 4.4)
    w, h, yx, yh, yy = 0.62, 0.5, 0.6, 1.9, 3.3
    source = list("quince")
    xe = [0.7 + i * 0.82 for i in range(len(source))]
    for i, (x, ch) in enumerate(zip(xe, source)):
        box(ax, x, yx, ch, INPUT, w, h, fontsize=15)
        box(ax, x, yh, rf"$h_{{{i + 1}}}$", HIDDEN, w, h, fontsize=14)
        arrow(ax, (x, yx + h / 2), (x, yh - h / 2))
        if i + 1 < len(xe):
            arrow(ax, (x + w / 2, yh), (xe[i + 1] - w / 2, yh), color=HIDDEN[1], lw=1.5)
    label(ax, (xe[0] + xe[-1]) / 2, yh + 0.65, "encoder: reads the source", fontsize=12, color=HIDDEN[1])
    dec_in, dec_out = [".", "1", "5"], ["1", "5", "."]
    xd = [xe[-1] + 2.3 + i * 1.15 for i in range(3)]
    dec = ("#fbe3d3", HILITE)
    arrow(ax, (xe[-1] + w / 2, yh), (xd[0] - w / 2, yh), color=HILITE, lw=2.4)
    label(ax, (xe[-1] + xd[0]) / 2, yh + 0.3, r"$c = h_S$", fontsize=14, color=HILITE)
    for i, x in enumerate(xd):
        box(ax, x, yx, dec_in[i], INPUT, w, h, fontsize=15)
        box(ax, x, yh, rf"$s_{{{i + 1}}}$", dec, w, h, fontsize=14)
        box(ax, x, yy, dec_out[i], OUTPUT, w, h, fontsize=15)
        arrow(ax, (x, yx + h / 2), (x, yh - h / 2))
        arrow(ax, (x, yh + h / 2), (x, yy - h / 2))
        if i + 1 < len(xd):
            arrow(ax, (x + w / 2, yh), (xd[i + 1] - w / 2, yh), color=HILITE, lw=1.5)
            curve(ax, [(x + w / 2 - 0.05, yy - 0.1), (x + 0.75, yy - 0.5), (xd[i + 1] - 0.75, yx + 0.5),
                       (xd[i + 1] - w / 2 + 0.05, yx + 0.1)], color=GREY, lw=1.0)  # fed back
    label(ax, (xd[0] + xd[-1]) / 2, yy + 0.55, "decoder: a language model of the digits", fontsize=12,
          color=HILITE)
    label(ax, 0.3, 0.1, "all the decoder learns of the source passes through $c$, whatever its length; "
          "at test time it reads its own previous output (grey)", fontsize=11, color=GREY, ha="left")
    save(fig, "seq2seq")


FIGURES = {
    "rnn": fig_rnn,
    "seq2seq": fig_seq2seq,
    "bptt-graph": fig_bptt_graph,
    "gradient-paths": fig_gradient_paths,
    "context-window": fig_context_window,
    "batching": fig_batching,
    "truncation": fig_truncation,
    "bidirectional": fig_bidirectional,
    "recall": fig_recall,
    "lstm": fig_lstm,
    "gru": fig_gru,
}


def main(argv):
    names = argv or list(FIGURES)
    unknown = [n for n in names if n not in FIGURES]
    if unknown:
        raise SystemExit(f"unknown figure(s) {unknown}; choose from {sorted(FIGURES)}")
    for n in names:
        FIGURES[n]()


if __name__ == "__main__":
    main(sys.argv[1:])
