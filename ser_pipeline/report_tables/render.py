"""Render layouts: an 80-column terminal (rich), markdown and HTML."""

from __future__ import annotations

import html as html_lib
from collections.abc import Sequence
from typing import Any

from ser_pipeline.report_tables.cells import Block, Cell, Figure, Layout, cell_text


# -- terminal -----------------------------------------------------------------------------
def rich_table(block: Block, *, compact: bool = False) -> Any:
    """A rich ``Table`` for one block (cells printed as written: no markup)."""
    from rich import box
    from rich.table import Table
    from rich.text import Text

    table = Table(box=box.SIMPLE_HEAD, header_style="bold", pad_edge=False,
                  collapse_padding=True, show_edge=False)
    last = len(block.headers) - 1
    for index, header in enumerate(block.headers):
        fold = block.fold_last and index == last
        table.add_column(Text(header), justify="left" if index < block.left else "right",
                         no_wrap=not fold, overflow="fold" if fold else "ellipsis",
                         min_width=min(20, max(len(header), 1)) if fold else None)
    for row in block.rows:
        table.add_row(*(Text(cell_text(cell, compact=compact)) for cell in row))
    return table


def block_width(block: Block, *, compact: bool = False) -> int:
    """The width the block's table needs to print without cutting a cell."""
    from rich.console import Console

    console = Console(width=100_000)
    return console.measure(rich_table(block, compact=compact)).maximum


def layout_width(layout: Layout) -> int:
    """The widest block's width (a folding column counts at its narrowest)."""
    widths = []
    for block in layout.blocks:
        if block.fold_last:
            from rich.console import Console

            console = Console(width=100_000)
            widths.append(console.measure(rich_table(block, compact=layout.compact)).minimum)
        else:
            widths.append(block_width(block, compact=layout.compact))
    return max(widths, default=0)


def fit(layouts: Sequence[Layout], width: int) -> Layout:
    """The first layout whose widest block fits ``width`` columns (else the last one).

    Examples:
        >>> rows = (("a-long-model-name", Figure(0.9, 0.8, 1.0), Figure(0.5, 0.4, 0.6)),)
        >>> wide = Layout("wide", (Block("t", ("model", "A", "V"), rows),))
        >>> narrow = Layout("compact", wide.blocks, compact=True)
        >>> fit([wide, narrow], 100).name, fit([wide, narrow], 50).name
        ('wide', 'compact')
    """
    for layout in layouts:
        if layout_width(layout) <= width:
            return layout
    return layouts[-1]


def print_layout(layout: Layout, console: Any) -> None:
    """Print the blocks and footnotes; long footnotes fold, they are never cut."""
    from rich.text import Text

    for index, block in enumerate(layout.blocks):
        if index:
            console.print()
        console.print(Text(block.title, style="bold", overflow="fold"))
        console.print(rich_table(block, compact=layout.compact))
        for note in block.notes:
            console.print(Text(note, overflow="fold"))
    if layout.footnotes:
        console.print()
    for note in layout.footnotes:
        console.print(Text(note, overflow="fold"))


# -- markdown and HTML --------------------------------------------------------------------
def _md(text: str) -> str:
    return text.replace("|", "\\|")


def markdown(layouts: Sequence[Layout]) -> str:
    """GitHub-flavoured markdown of the first (widest) layout, with full intervals."""
    layout = layouts[0]
    parts = []
    for block in layout.blocks:
        lines = [f"**{_md(block.title)}**", "",
                 "| " + " | ".join(_md(h) for h in block.headers) + " |",
                 "|" + "|".join("---" if i < block.left else "---:"
                                for i in range(len(block.headers))) + "|"]
        lines += ["| " + " | ".join(_md(cell_text(c)) for c in row) + " |" for row in block.rows]
        lines += [f"\n{_md(note)}" for note in block.notes]
        parts.append("\n".join(lines))
    text = "\n\n".join(parts)
    if layout.footnotes:
        text += "\n\n" + "\n".join(f"- {_md(note)}" for note in layout.footnotes)
    return text


def _html_cell(cell: Cell) -> str:
    if isinstance(cell, Figure):
        value, interval = cell.parts()
        if not interval:
            return html_lib.escape(value)
        return (f"{html_lib.escape(value)}<span class='ci'>{html_lib.escape(interval)}"
                "</span>")
    return html_lib.escape(cell_text(cell))


def html(layouts: Sequence[Layout], *, css_class: str = "compact") -> str:
    """HTML tables of the first (widest) layout; intervals go on a second line."""
    layout = layouts[0]
    out = []
    for block in layout.blocks:
        head = "".join(f"<th>{html_lib.escape(h)}</th>" for h in block.headers)
        body = "".join(
            "<tr>" + "".join(f"<td class='{'l' if i < block.left else 'r'}'>{_html_cell(c)}</td>"
                             for i, c in enumerate(row)) + "</tr>"
            for row in block.rows)
        out.append(f"<table class='{css_class}'><caption>{html_lib.escape(block.title)}"
                   f"</caption><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
        out += [f"<p class='note'>{html_lib.escape(note)}</p>" for note in block.notes]
    if layout.footnotes:
        items = "".join(f"<li>{html_lib.escape(note)}</li>" for note in layout.footnotes)
        out.append(f"<ul class='footnotes'>{items}</ul>")
    return "".join(out)
