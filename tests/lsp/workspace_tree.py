"""A synthetic workspace of many small model files (for tests/lsp/test_workspace.py and
bench/lsp_workspace.py; the benchmark also builds one from transformers' sources)."""

from __future__ import annotations

from pathlib import Path


def synthetic_workspace(root: Path, files: int) -> None:
    """`files` Python files in packages of 100, each a module class built on the previous
    file's (relative imports) and a training loop: correct code, silent."""
    for i in range(files):
        package, number = divmod(i, 100)
        directory = root / f"pkg{package}"
        directory.mkdir(parents=True, exist_ok=True)
        if number == 0:
            (directory / "__init__.py").write_text("")
        base = (
            f"from .m{number - 1} import Block{number - 1} as Base"
            if number
            else "from torch.nn import Module as Base"
        )
        (directory / f"m{number}.py").write_text(
            f"import torch\nimport torch.nn as nn\n{base}\n\n\nclass Block{number}(Base):\n"
            "    def __init__(self):\n        super().__init__()\n        self.fc = nn.Linear(8, 8)\n\n"
            "    def forward(self, x):\n        return torch.relu(self.fc(x))\n\n\n"
            "def train(model, data):\n    opt = torch.optim.SGD(model.parameters(), lr=0.1)\n"
            "    for x, y in data:\n        opt.zero_grad()\n        loss = (model(x) - y).pow(2).mean()\n"
            "        loss.backward()\n        opt.step()\n"
        )
