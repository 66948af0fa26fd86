"""Adversarial inputs kept as scripts: malformed LSP exchanges and hostile probe targets.

Each module runs on its own (`python tests/adversarial/lsp_exchanges.py`) and prints a table of
inputs tried / handled / failures; the tests in tests/lsp and tests/probe run the same cases.
"""
