"""The analysis engine: parsing, the semantic index, the rule framework and fixes.

Nothing here knows about LSP and nothing here imports torch.
"""

from gradguard.engine.finding import Applicability, Finding, Fix, Severity, TextEdit
from gradguard.engine.analyzer import Analyzer, check_source

__all__ = ["Analyzer", "Applicability", "Finding", "Fix", "Severity", "TextEdit", "check_source"]
