"""A local step-tree viewer: one self-contained HTML file (inline JS/CSS, no network) per tree,
Solution or bench run. `html` writes the file; `sources` reads trees from what reasoner writes."""

from reasoner.viewer.html import render_html, write_html
from reasoner.viewer.sources import (
    default_view_path,
    load_entries,
    row_entry,
    solution_entry,
    tree_entry,
)

__all__ = [
    "default_view_path",
    "load_entries",
    "render_html",
    "row_entry",
    "solution_entry",
    "tree_entry",
    "write_html",
]
