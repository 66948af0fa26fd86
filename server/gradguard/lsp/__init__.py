"""The gradguard language server (`gradguard lsp`): a thin LSP layer over the engine."""
