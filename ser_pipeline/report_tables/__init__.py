"""Report tables readable anywhere: an 80-column terminal, a pipe, markdown and HTML.

A report's records become candidate :class:`Layout` s, from the widest (everything in one
block per corpus) to the most compact (one line per model and dimension). Each layout is a
list of titled :class:`Block` s and footnotes; long ids live in the footnotes, so rows carry
short names. The terminal gets the first layout whose widest block fits the console
(:func:`fit`), so ``COLUMNS=80 ser report paper_table`` and piped output print every
number; markdown and HTML get the widest layout, HTML with intervals on a second line of
each cell so that the page fits 1280 px.

CCC cells are :class:`Figure` s: a value with its interval, printed ``0.940 [0.921,
0.955]`` or, compactly, ``0.94 [.92,.96]``.

The package, one concern a module:

- :mod:`~ser_pipeline.report_tables.cells`: figures, cells, blocks, layouts, and the
  record helpers the layout builders share;
- :mod:`~ser_pipeline.report_tables.render`: the terminal (:func:`fit`,
  :func:`print_layout`), :func:`markdown` and :func:`html`;
- :mod:`~ser_pipeline.report_tables.paper`, :mod:`~ser_pipeline.report_tables.leaderboard`,
  :mod:`~ser_pipeline.report_tables.robustness` and
  :mod:`~ser_pipeline.report_tables.generic`: the layouts of each report.

Examples:
    >>> Figure(0.9401, 0.9212, 0.9553).text()
    '0.940 [0.921, 0.955]'
    >>> Figure(0.9401, 0.9212, 0.9553).text(compact=True)
    '0.94 [.92,.96]'
    >>> Figure(-0.031, -0.052, 0.004).text(compact=True)
    '-0.03 [-.05,.00]'
    >>> Figure(None).text(), Figure(0.5).text(), Figure(-0.0004, -0.003, 0.002).text()
    ('–', '0.500', '0.000 [-0.003, 0.002]')
    >>> block = Block("demo · dev", ("model", "A"), (("wav2small", Figure(0.94, 0.92, 0.96)),))
    >>> print(markdown([Layout("wide", (block,), ("wav2small: run wav2small-1",))]))
    **demo · dev**
    <BLANKLINE>
    | model | A |
    |---|---:|
    | wav2small | 0.940 [0.920, 0.960] |
    <BLANKLINE>
    - wav2small: run wav2small-1
"""

from ser_pipeline.report_tables.cells import (
    MISSING,
    PERTURBATION_LABELS,
    Block,
    Cell,
    Figure,
    Layout,
    cell_text,
)
from ser_pipeline.report_tables.generic import generic_layouts
from ser_pipeline.report_tables.leaderboard import leaderboard_layouts
from ser_pipeline.report_tables.paper import paper_layouts, short_names
from ser_pipeline.report_tables.render import (
    block_width,
    fit,
    html,
    layout_width,
    markdown,
    print_layout,
    rich_table,
)
from ser_pipeline.report_tables.robustness import robustness_layouts

__all__ = ["MISSING", "PERTURBATION_LABELS", "Block", "Cell", "Figure", "Layout",
           "block_width", "cell_text", "fit", "generic_layouts", "html", "layout_width",
           "leaderboard_layouts", "markdown", "paper_layouts", "print_layout", "rich_table",
           "robustness_layouts", "short_names"]
