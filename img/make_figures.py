"""Draw the chapter's diagrams as SVG files in this folder (img/).

    .venv/bin/python img/make_figures.py            # all figures
    .venv/bin/python img/make_figures.py rnn lstm   # only some

The output is deterministic: matplotlib draws every glyph as a path (no fonts needed by the
viewer), ``svg.hashsalt`` fixes the ids, and the date is left out of the metadata, so running
the script twice gives byte-identical files (for a given matplotlib version).

Notation follows the chapter: row vectors, ``H_t = phi(X_t U + H_{t-1} W + b)``,
``Y_t = H_t V + c``; the LSTM and GRU cells follow PyTorch's documented gate equations.
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
    fig, ax = canvas(9.6, 4.3)
    yx, yh, yy = 0.95, 2.25, 3.55
    w, h = 0.9, 0.55

    # (a) cyclic
    cx = 1.2
    box(ax, cx, yx, r"$\mathbf{x}_t$", INPUT, w, h)
    box(ax, cx, yh, r"$\mathbf{h}_t$", HIDDEN, w, h)
    box(ax, cx, yy, r"$\mathbf{y}_t$", OUTPUT, w, h)
    arrow(ax, (cx, yx + h / 2), (cx, yh - h / 2))
    arrow(ax, (cx, yh + h / 2), (cx, yy - h / 2))
    label(ax, cx - 0.17, (yx + yh) / 2, r"$U$", ha="right", fontsize=15)
    label(ax, cx - 0.17, (yh + yy) / 2, r"$V$", ha="right", fontsize=15)
    # self loop on h: leaves the right side, comes back to the right side
    r = cx + w / 2
    curve(ax, [(r, yh + 0.12), (r + 0.95, yh + 0.75), (r + 0.95, yh - 0.75), (r, yh - 0.12)],
          color=HIDDEN[1], lw=1.6)
    label(ax, r + 0.82, yh, r"$W$", ha="left", fontsize=15)
    label(ax, cx + 0.3, 0.22, "(a) cyclic", fontsize=15)

    # unfold arrow
    ax.add_patch(FancyArrowPatch((2.85, yh), (3.65, yh), arrowstyle="simple,head_width=0.9,"
                                 "head_length=0.7,tail_width=0.35", mutation_scale=22,
                                 fc="#bdbdbd", ec="#9a9a9a", lw=1.0, zorder=2))
    label(ax, 3.25, yh + 0.42, "unfold", fontsize=13, color=GREY)

    # (b) unrolled
    cols = [5.0, 6.85, 8.7]
    subs = ["t-1", "t", "t+1"]
    for c, s in zip(cols, subs):
        box(ax, c, yx, rf"$\mathbf{{x}}_{{{s}}}$", INPUT, w, h)
        box(ax, c, yh, rf"$\mathbf{{h}}_{{{s}}}$", HIDDEN, w, h)
        box(ax, c, yy, rf"$\mathbf{{y}}_{{{s}}}$", OUTPUT, w, h)
        arrow(ax, (c, yx + h / 2), (c, yh - h / 2))
        arrow(ax, (c, yh + h / 2), (c, yy - h / 2))
        label(ax, c - 0.17, (yx + yh) / 2, r"$U$", ha="right", fontsize=15)
        label(ax, c - 0.17, (yh + yy) / 2, r"$V$", ha="right", fontsize=15)
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
    fig, ax = canvas(9.6, 6.0)
    cols = [1.9, 4.9, 7.9]
    subs = ["t-1", "t", "t+1"]
    yx, yh, yy, yl = 0.75, 2.45, 3.95, 5.3
    w, h = 1.0, 0.58
    P = 0.2  # radius of parameter circles

    for i, (c, s) in enumerate(zip(cols, subs)):
        centre = i == 1
        child = i == 2  # H_{t+1} depends on H_t
        box(ax, c, yx, rf"$X_{{{s}}}$", INPUT, w, h)
        box(ax, c, yh, rf"$H_{{{s}}}$", HIDDEN, w, h,
            ec=HILITE if (centre or child) else None, lw=2.6 if centre else (2.2 if child else 1.4))
        box(ax, c, yy, rf"$Y_{{{s}}}$", OUTPUT, w, h,
            ec=HILITE if centre else None, lw=2.2 if centre else 1.4)
        box(ax, c, yl, rf"$L_{{{s}}}$", LOSS, w, h)
        arrow(ax, (c, yx + h / 2), (c, yh - h / 2))
        arrow(ax, (c, yh + h / 2), (c, yy - h / 2), color=HILITE if centre else INK,
              lw=2.2 if centre else 1.4)
        arrow(ax, (c, yy + h / 2), (c, yl - h / 2))
        # parameters: U feeds H (with X), b feeds H, V feeds Y (with H)
        pu = (c - 0.85, (yx + yh) / 2)
        pb = (c + 0.85, (yx + yh) / 2)
        pv = (c - 0.85, (yh + yy) / 2 + 0.05)
        circle(ax, *pu, r"$U$", PARAM, r=P)
        circle(ax, *pb, r"$b$", PARAM, r=P)
        circle(ax, *pv, r"$V$", PARAM, r=P)
        arrow(ax, (pu[0] + P * 0.7, pu[1] + P * 0.7), (c - w / 2 + 0.12, yh - h / 2), lw=1.1,
              head=10, color=PARAM[1])
        arrow(ax, (pb[0] - P * 0.7, pb[1] + P * 0.7), (c + w / 2 - 0.12, yh - h / 2), lw=1.1,
              head=10, color=PARAM[1])
        arrow(ax, (pv[0] + P * 0.7, pv[1] + P * 0.7), (c - w / 2 + 0.12, yy - h / 2), lw=1.1,
              head=10, color=PARAM[1])

    # recurrent edges with W
    def recurrent(x0, x1, color=INK, lw=1.4):
        arrow(ax, (x0, yh), (x1, yh), color=color, lw=lw)
        xm = (x0 + x1) / 2
        circle(ax, xm, yh + 0.62, r"$W$", PARAM, r=P)
        arrow(ax, (xm + P * 0.75, yh + 0.62 - P * 0.7), (x1 - 0.02, yh + 0.1), lw=1.1, head=10,
              color=PARAM[1], rad=0.25)

    label(ax, 0.28, yh, r"$\cdots$", fontsize=16)
    recurrent(0.55, cols[0] - w / 2)
    recurrent(cols[0] + w / 2, cols[1] - w / 2)
    recurrent(cols[1] + w / 2, cols[2] - w / 2, color=HILITE, lw=2.2)
    arrow(ax, (cols[2] + w / 2, yh), (9.2, yh))
    label(ax, 9.38, yh, r"$\cdots$", fontsize=16)

    # legend
    ly = 5.78
    box(ax, 0.45, ly, "", HIDDEN, 0.42, 0.3, rounding=0.05, pad=0.03)
    label(ax, 0.75, ly, "variable", ha="left", fontsize=13)
    circle(ax, 1.95, ly, "", PARAM, r=0.14)
    label(ax, 2.17, ly, "parameter (shared over time)", ha="left", fontsize=13)
    box(ax, 5.25, ly, "", ("white", HILITE), 0.42, 0.3, lw=2.2, rounding=0.05, pad=0.03)
    label(ax, 5.55, ly, r"computed directly from $H_t$", ha="left", fontsize=13)
    save(fig, "bptt-graph")


# --------------------------------------------------------------------------------------
# img/gradient-paths.svg: the path from L_{t+kappa} back to H_t has kappa recurrent steps.
# --------------------------------------------------------------------------------------


def fig_gradient_paths():
    rows = [0, 1, 2, 3]
    dy = 1.05
    fig, ax = canvas(10.4, 1.05 + dy * (len(rows) + 1) + 0.15)
    w, h = 0.95, 0.52
    step = 1.35
    x0 = 1.55
    top = 0.55 + dy * (len(rows) + 1)

    label(ax, 0.2, top, r"$\kappa$", fontsize=16, ha="left")
    label(ax, x0 - 0.2, top, "backward path (gradient flows right to left)", fontsize=14,
          ha="left")
    label(ax, 8.95, top, r"$\partial L_{t+\kappa} / \partial H_t \propto$", fontsize=15)

    def draw_row(y, kappa, general=False):
        label(ax, 0.28, y, r"$\kappa$" if general else f"{kappa}", fontsize=16)
        xs = []
        names = []
        if general:
            names = [r"$H_t$", r"$H_{t+1}$", None, r"$H_{t+\kappa}$", r"$Y_{t+\kappa}$",
                     r"$L_{t+\kappa}$"]
        else:
            names = [r"$H_t$"] + [rf"$H_{{t+{j}}}$" for j in range(1, kappa + 1)]
            sub = f"t+{kappa}" if kappa else "t"
            names += [rf"$Y_{{{sub}}}$", rf"$L_{{{sub}}}$"]
        x = x0
        for n in names:
            xs.append(x)
            x += step
        for i, (x, n) in enumerate(zip(xs, names)):
            if n is None:
                label(ax, x, y, r"$\cdots$", fontsize=18)
                continue
            colors = HIDDEN if n.startswith("$H") else (OUTPUT if n.startswith("$Y") else LOSS)
            box(ax, x, y, n, colors, w, h, fontsize=15)
        # backward arrows, right to left, with the matrix each step multiplies by
        for i in range(len(xs) - 1, 0, -1):
            a, b = xs[i], xs[i - 1]
            ra = w / 2 if names[i] else 0.3
            rb = w / 2 if names[i - 1] else 0.3
            arrow(ax, (a - ra, y), (b + rb, y), color=BACKPROP, lw=1.7)
            tgt, src = names[i - 1], names[i]
            if tgt is None or src is None or src.startswith("$L"):
                continue
            mat = r"$V^\top$" if src.startswith("$Y") else r"$W^\top$"
            label(ax, (a + b) / 2, y + 0.3, mat, fontsize=14, color=BACKPROP)
        if general:
            formula = r"$V^\top (W^\top)^{\kappa}$"
        elif kappa == 0:
            formula = r"$V^\top$"
        elif kappa == 1:
            formula = r"$V^\top W^\top$"
        else:
            formula = rf"$V^\top (W^\top)^{{{kappa}}}$"
        label(ax, 8.95, y, formula, fontsize=16)

    for k in rows:
        draw_row(top - dy * (k + 1) + 0.05, k)
    draw_row(top - dy * (len(rows) + 1) + 0.05, None, general=True)
    ax.plot([0.1, 10.3], [top - 0.38, top - 0.38], color="#cccccc", lw=1.0)
    ax.plot([7.95, 7.95], [0.1, top + 0.25], color="#cccccc", lw=1.0)
    label(ax, 8.95, 0.32, r"(each $W^\top$ also scaled by $\phi'$)", fontsize=12, color=GREY)
    save(fig, "gradient-paths")


# --------------------------------------------------------------------------------------
# img/context-window.svg: a fixed window of tau = 3 characters predicts the next one.
# --------------------------------------------------------------------------------------


def fig_context_window():
    fig, ax = canvas(9.6, 5.1)
    chars = [".", ".", "g", "a", "r", "c", "i", "a"]
    cw, y = 0.62, 4.35
    x_start = 1.25
    xs = [x_start + i * cw for i in range(len(chars))]
    win = [2, 3, 4]  # "g", "a", "r"
    target = 5  # "c"
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
    label(ax, (xs[0] + xs[1]) / 2, y - 0.55, "ignored", fontsize=12, color="#a0a0a0")
    label(ax, xs[-1] + 0.55, y, "…", fontsize=18, color="#a0a0a0")
    label(ax, 0.15, y, "name:", fontsize=14, ha="left", color=GREY)

    # model
    mx, my = (left + right) / 2, 2.55
    arrow(ax, ((left + right) / 2, y - 0.78), (mx, my + 0.42), lw=1.6)
    box(ax, mx, my, "model\n(MLP or causal CNN)", PARAM, 2.3, 0.8, fontsize=14)
    label(ax, mx - 1.3, 3.22, "look up and concatenate\n3 embeddings", fontsize=12,
          color=GREY, ha="right")

    # next-character distribution as a bar chart
    probs = [("c", 0.31), ("d", 0.17), ("z", 0.12), ("r", 0.10), ("t", 0.08), ("b", 0.06),
             ("a", 0.05), ("others", 0.11)]
    bx0, by0, bw, scale = 5.15, 0.6, 0.42, 6.0
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
    label(ax, bx0 + 2.0, by0 + 0.31 * scale + 0.35,
          r"$p(x_t \mid x_{t-3}, x_{t-2}, x_{t-1})$", fontsize=15)
    label(ax, 0.2, 0.85, "slide the window one step\nto get the next example:\n"
          "(..g→a), (.ga→r), (gar→c), …", fontsize=12, color=GREY, ha="left", va="center",
          linespacing=1.5)
    save(fig, "context-window")


# --------------------------------------------------------------------------------------
# Gated cells. Rectangles are affine layers with an activation, circles element-wise ops.
# --------------------------------------------------------------------------------------


def cell_legend(ax, x, y):
    box(ax, x, y, r"$\sigma$", SIGMA, 0.46, 0.36, fontsize=13, pad=0.03)
    label(ax, x + 0.33, y, "affine layer + activation", ha="left", fontsize=12)
    circle(ax, x + 3.3, y, r"$\odot$", r=0.13, fontsize=12)
    label(ax, x + 3.52, y, "element-wise op", ha="left", fontsize=12)
    dot(ax, x + 5.4, y)
    label(ax, x + 5.55, y, "copy", ha="left", fontsize=12)
    ax.plot([x + 6.25, x + 6.55], [y + 0.12, y - 0.12], color=INK, lw=1.2)
    label(ax, x + 6.65, y, r"concatenate $[\mathbf{x}_t, \mathbf{h}_{t-1}]$", ha="left",
          fontsize=12)


def fig_lstm():
    fig, ax = canvas(9.6, 5.9)
    # cell background
    ax.add_patch(FancyBboxPatch((1.25, 0.95), 7.0, 4.05, boxstyle="round,pad=0,rounding_size=0.25",
                                fc=CELL_BG[0], ec=CELL_BG[1], lw=1.3, zorder=0))
    yc, ybus, ygate = 4.35, 1.45, 2.45
    gx = [2.35, 3.55, 4.75, 6.25]  # f, i, g, o
    names = [r"$\mathbf{f}_t$", r"$\mathbf{i}_t$", r"$\mathbf{g}_t$", r"$\mathbf{o}_t$"]
    kinds = [SIGMA, SIGMA, TANH, SIGMA]
    acts = [r"$\sigma$", r"$\sigma$", r"$\tanh$", r"$\sigma$"]
    gw, gh = 0.8, 0.5

    # memory cell line
    label(ax, 0.45, yc, r"$\mathbf{c}_{t-1}$", fontsize=16)
    fx, ix = gx[0], gx[2]
    arrow(ax, (0.8, yc), (fx - 0.17, yc), lw=2.2)
    circle(ax, fx, yc, r"$\odot$")
    arrow(ax, (fx + 0.17, yc), (ix - 0.17, yc), lw=2.2)
    circle(ax, ix, yc, r"$+$")
    arrow(ax, (ix + 0.17, yc), (9.0, yc), lw=2.2)
    label(ax, 9.25, yc, r"$\mathbf{c}_t$", fontsize=16)

    # inputs: h_{t-1} from the left, x_t from below, joined into one bus
    yh_in = ybus
    label(ax, 0.45, yh_in, r"$\mathbf{h}_{t-1}$", fontsize=16)
    jx = 1.75
    polyline(ax, [(0.85, yh_in), (jx, yh_in)], arrowhead=False)
    label(ax, jx, 0.3, r"$\mathbf{x}_t$", fontsize=16)
    polyline(ax, [(jx, 0.5), (jx, yh_in)], arrowhead=False)
    ax.plot([jx - 0.12, jx + 0.12], [yh_in - 0.12, yh_in + 0.12], color=INK, lw=1.2, zorder=4)
    polyline(ax, [(jx, yh_in), (gx[-1], yh_in)], arrowhead=False)
    for x in gx:
        dot(ax, x, yh_in)
        arrow(ax, (x, yh_in), (x, ygate - gh / 2))

    for x, k, a, n in zip(gx, kinds, acts, names):
        box(ax, x, ygate, a, k, gw, gh, fontsize=15)
        label(ax, x + 0.17, ygate + gh / 2 + 0.22, n, ha="left", fontsize=15)

    # f -> forget multiply
    arrow(ax, (fx, ygate + gh / 2), (fx, yc - 0.17))
    # i and g -> multiply -> add to the cell line
    mx, my = gx[2], 3.45
    circle(ax, mx, my, r"$\odot$")
    polyline(ax, [(gx[1], ygate + gh / 2), (gx[1], my), (mx - 0.17, my)])
    arrow(ax, (gx[2], ygate + gh / 2), (mx, my - 0.17))
    arrow(ax, (mx, my + 0.17), (ix, yc - 0.17))

    # output: tanh(c_t) * o_t
    tx = 7.35
    dot(ax, tx, yc)
    box(ax, tx, 3.6, r"$\tanh$", TANH, 0.8, 0.42, fontsize=14, rounding=0.2)
    arrow(ax, (tx, yc), (tx, 3.6 + 0.21))
    ox, oy = tx, 2.45
    circle(ax, ox, oy, r"$\odot$")
    arrow(ax, (tx, 3.6 - 0.21), (ox, oy + 0.17))
    arrow(ax, (gx[3] + gw / 2, ygate), (ox - 0.17, oy))
    # h_t leaves to the right and up (as the output y of this step)
    polyline(ax, [(ox, oy - 0.17), (ox, ybus), (9.0, ybus)], lw=2.0)
    label(ax, 9.25, ybus, r"$\mathbf{h}_t$", fontsize=16)
    dot(ax, 7.9, ybus)
    arrow(ax, (7.9, ybus), (7.9, 5.55), lw=1.4, ls="-")
    label(ax, 7.9, 5.72, r"$\mathbf{h}_t$ (output)", fontsize=14)
    # hide the output line where it crosses the cell line with a gap marker
    ax.add_patch(Circle((7.9, yc), 0.07, fc=CELL_BG[0], ec="none", zorder=2.5))

    cell_legend(ax, 2.4, 0.3)
    save(fig, "lstm")


def fig_gru():
    fig, ax = canvas(9.6, 5.9)
    ax.add_patch(FancyBboxPatch((1.25, 0.95), 7.0, 4.05, boxstyle="round,pad=0,rounding_size=0.25",
                                fc=CELL_BG[0], ec=CELL_BG[1], lw=1.3, zorder=0))
    yt, ybus, ygate = 4.35, 1.45, 2.45
    # top line: h_{t-1} ... (z * h_{t-1}) + ((1 - z) * n) -> h_t
    label(ax, 0.45, yt, r"$\mathbf{h}_{t-1}$", fontsize=16)
    zx, ax_ = 3.55, 6.55  # multiply by z, add
    arrow(ax, (0.85, yt), (zx - 0.17, yt), lw=2.2)
    circle(ax, zx, yt, r"$\odot$")
    arrow(ax, (zx + 0.17, yt), (ax_ - 0.17, yt), lw=2.2)
    circle(ax, ax_, yt, r"$+$")
    arrow(ax, (ax_ + 0.17, yt), (9.0, yt), lw=2.2)
    label(ax, 9.25, yt, r"$\mathbf{h}_t$", fontsize=16)
    dot(ax, 7.9, yt)
    arrow(ax, (7.9, yt), (7.9, 5.55))
    label(ax, 7.9, 5.72, r"$\mathbf{h}_t$ (output)", fontsize=14)

    # h_{t-1} is copied down into the bus; x_t comes from below
    jx = 1.75
    dot(ax, jx, yt)
    polyline(ax, [(jx, yt), (jx, ybus)], arrowhead=False)
    label(ax, jx, 0.3, r"$\mathbf{x}_t$", fontsize=16)
    polyline(ax, [(jx, 0.5), (jx, ybus)], arrowhead=False)
    ax.plot([jx - 0.12, jx + 0.12], [ybus - 0.12, ybus + 0.12], color=INK, lw=1.2, zorder=4)
    rx, zgx = 2.45, 3.55
    polyline(ax, [(jx, ybus), (zgx, ybus)], arrowhead=False)
    for x in (rx, zgx):
        dot(ax, x, ybus)
        arrow(ax, (x, ybus), (x, ygate - 0.25))
    box(ax, rx, ygate, r"$\sigma$", SIGMA, 0.8, 0.5)
    label(ax, rx - 0.45, ygate + 0.43, r"$\mathbf{r}_t$", fontsize=15, ha="left")
    box(ax, zgx, ygate, r"$\sigma$", SIGMA, 0.8, 0.5)
    label(ax, zgx + 0.17, ygate + 0.47, r"$\mathbf{z}_t$", fontsize=15, ha="left")
    # z_t gates the old state on the top line
    arrow(ax, (zgx, ygate + 0.25), (zx, yt - 0.17))
    # 1 - z_t gates the candidate
    oz = (4.6, 3.4)
    circle(ax, *oz, r"$1-$", r=0.22, fontsize=12)
    dot(ax, zgx, 3.4)
    arrow(ax, (zgx, 3.4), (oz[0] - 0.22, 3.4))

    # candidate n_t = tanh(W_in x + b_in + r * (W_hn h + b_hn))
    # the hidden part: separate affine map of h_{t-1}, then multiplied by r_t
    hx_lin = 5.05
    # x_t path to the candidate: a separate line at the bottom
    ylow = 1.15
    dot(ax, jx, ylow)
    polyline(ax, [(jx, ylow), (5.75, ylow), (5.75, 2.05 - 0.25)])
    box(ax, 5.75, 2.05, r"$W_{in}\cdot$", LINEAR, 0.95, 0.5, fontsize=13)
    # h_{t-1} affine map
    dot(ax, hx_lin, yt)
    box(ax, hx_lin, 3.5, r"$W_{hn}\cdot$", LINEAR, 0.95, 0.5, fontsize=13)
    arrow(ax, (hx_lin, yt), (hx_lin, 3.75))
    rm = (hx_lin, 2.75)
    circle(ax, *rm, r"$\odot$")
    arrow(ax, (hx_lin, 3.25), (rm[0], rm[1] + 0.17))
    polyline(ax, [(rx, ygate + 0.25), (rx, 2.9), (3.0, 2.9), (3.0, rm[1]), (rm[0] - 0.17, rm[1])])
    add = (5.75, 2.75)
    circle(ax, *add, r"$+$")
    arrow(ax, (rm[0] + 0.17, rm[1]), (add[0] - 0.17, add[1]))
    arrow(ax, (5.75, 2.3), (add[0], add[1] - 0.17))
    tn = (6.75, 2.75)
    box(ax, tn[0], tn[1] + 0.0, r"$\tanh$", TANH, 0.8, 0.46, fontsize=14)
    arrow(ax, (add[0] + 0.17, add[1]), (tn[0] - 0.4, tn[1]))
    label(ax, tn[0] + 0.47, tn[1] - 0.3, r"$\mathbf{n}_t$", fontsize=15, ha="left")
    mul = (6.55, 3.4)
    circle(ax, *mul, r"$\odot$")
    arrow(ax, (oz[0] + 0.22, 3.4), (mul[0] - 0.17, 3.4))
    arrow(ax, (tn[0] - 0.2, tn[1] + 0.23), (mul[0], mul[1] - 0.17))
    arrow(ax, (mul[0], mul[1] + 0.17), (ax_, yt - 0.17))

    cell_legend(ax, 2.4, 0.3)
    save(fig, "gru")


FIGURES = {
    "rnn": fig_rnn,
    "bptt-graph": fig_bptt_graph,
    "gradient-paths": fig_gradient_paths,
    "context-window": fig_context_window,
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
