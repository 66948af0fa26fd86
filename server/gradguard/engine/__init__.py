"""The analysis engine: parsing, the semantic index, the rule framework and fixes.

Nothing here knows about LSP and nothing here imports torch.
"""

from gradguard.engine import _native

# the compiled engine (scripts/build-native), only when built from exactly these sources
_native.install()

from gradguard.engine.finding import Applicability, Finding, Fix, Severity, TextEdit  # noqa: E402
from gradguard.engine.analyzer import Analyzer, check_source  # noqa: E402

__all__ = ["Analyzer", "Applicability", "Finding", "Fix", "Severity", "TextEdit", "check_source"]
