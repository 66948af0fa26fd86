"""Renderers for the CLI's --format choices."""

from gradguard.output.render import FORMATS, render

__all__ = ["FORMATS", "render"]
