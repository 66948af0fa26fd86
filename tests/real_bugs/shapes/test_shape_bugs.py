"""Shape bugs reconstructed from public reports: each file fails with torch the way its header says.

Header of every file (the same format as the autograd bugs in tests/real_bugs/):

    # source: <URL of the public report>
    # what: <what the person wrote and what happened>
    # expect: GG501@23        the code and line where gradguard should report (codes in docs/rules.md)
    # fails: <substring of the exception torch raises>, or `no-learning` (an AssertionError: the file
    #        asserts that it learns, which the bug prevents)
    # fix: <the mechanical fix in words>

All files run in this one process with runpy (torch is imported once). For each file the test also
applies its fix (FIXES below: the textual edit the `fix:` line describes) and runs the result, which must
succeed. This test does not ask gradguard anything.
"""

from __future__ import annotations

import re
import runpy
import warnings
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

pytestmark = pytest.mark.torch


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny tensors: one thread is much faster than two fighting over a loaded machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


HERE = Path(__file__).resolve().parent
FILES = sorted(p for p in HERE.glob("*.py") if not p.name.startswith("test_"))
CODES = {"GG501", "GG502", "GG503", "GG504", "GG505", "GG506", "GG507", "GG508", "GG509"}
FIELDS = ("source", "what", "expect", "fails", "fix")

# file -> [(old, new)] text edits that implement its `fix:` line
FIXES: dict[str, list[tuple[str, str]]] = {
    "batchnorm1d_on_tokens.py": [("return self.mlp(tokens)", "return self.mlp(tokens.mean(dim=1))")],
    "bce_target_missing_channel.py": [
        ("loss = criterion(prob, mask)", "loss = criterion(prob, mask.unsqueeze(1))")
    ],
    "causal_mask_wrong_dim.py": [("querys.size(2)", "querys.size(-2)"), ("keys.size(2)", "keys.size(-2)")],
    "conv_to_linear_in_features.py": [("nn.Linear(1050, 10)", "nn.Linear(1568, 10)")],
    "cross_entropy_column_target.py": [("criterion(y_pred, labels)", "criterion(y_pred, labels.squeeze(1))")],
    "cross_entropy_one_hot_flattened.py": [("label_ids.view(-1)", "label_ids.argmax(dim=1)")],
    "density_map_size_mismatch.py": [
        (
            "loss = criterion(output, target)",
            "loss = criterion(output, torch.nn.functional.avg_pool2d(target, 8) * 64)",
        )
    ],
    "grayscale_into_rgb_stem.py": [("output = model(data)", "output = model(data.expand(-1, 3, -1, -1))")],
    "images_not_flattened_typo.py": [
        ("imagees = images.view(1, -1)", "images = images.view(images.shape[0], -1)")
    ],
    "keypoints_view_merges_batch.py": [("key_pts.view(1, -1)", "key_pts.view(key_pts.size(0), -1)")],
    "lenet_on_28x28.py": [("nn.Linear(16 * 5 * 5, 120)", "nn.Linear(16 * 4 * 4, 120)")],
    "linear_on_pooled_map.py": [("self.image_embedder_attr(x)", "self.image_embedder_attr(x.flatten(1))")],
    "lstm_batch_first_hidden.py": [
        (
            "sequences.view(1, self.batch_len, self.input_dim)",
            "sequences.view(self.batch_len, 1, self.input_dim)",
        )
    ],
    "lstm_decoder_num_layers.py": [
        ("nn.LSTM(emb, hidden, num_layers=2)", "nn.LSTM(emb, hidden, num_layers=1)")
    ],
    "mse_column_vs_vector.py": [("loss = loss_fn(pred, target)", "loss = loss_fn(pred.squeeze(1), target)")],
    "matmul_weight_orientation.py": [("data @ model.weight)", "data @ model.weight.T)")],
    "softmax_before_cross_entropy.py": [("return torch.softmax(self.fc(x), dim=1)", "return self.fc(x)")],
    "unet_skip_cat_odd_size.py": [("torch.randn(1, 3, 122, 122)", "torch.randn(1, 3, 128, 128)")],
    "view_after_transpose_attention.py": [("context = context.view(", "context = context.reshape(")],
    "view_flatten_size_small_input.py": [("torch.randn(6, 3, 21, 21)", "torch.randn(6, 3, 32, 32)")],
    "view_merges_time_into_batch.py": [("x = x.view(-1, sizes[1], sizes[3], sizes[4])", "x = x.mean(dim=2)")],
}


def header(path: Path) -> dict[str, str]:
    fields: dict[str, str] = {}
    last = None
    for line in path.read_text(encoding="utf-8").splitlines():
        m = re.match(r"# (\w+): (.*)$", line)
        if m and m.group(1) in FIELDS:
            last = m.group(1)
            fields[last] = m.group(2).strip()
        elif last == "what" and line.startswith("#   "):
            fields["what"] += " " + line[4:].strip()
        elif not line.startswith("#"):
            break
    return fields


def run(path: Path, source: str | None = None) -> BaseException | None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            if source is None:
                runpy.run_path(str(path), run_name="__main__")
            else:
                exec(compile(source, str(path), "exec"), {"__name__": "__main__", "__file__": str(path)})
        except Exception as exc:
            return exc
    return None


def test_enough_bugs() -> None:
    assert len(FILES) >= 18, len(FILES)


@pytest.mark.parametrize("path", FILES, ids=[p.name for p in FILES])
def test_bug_fails_as_reported(path: Path) -> None:
    fields = header(path)
    assert set(fields) == set(FIELDS), f"{path.name}: header has {sorted(fields)}"
    assert re.match(r"https://\S+$", fields["source"]), fields["source"]
    m = re.fullmatch(r"(GG\d{3})@(\d+)", fields["expect"])
    assert m and m.group(1) in CODES, fields["expect"]
    line = int(m.group(2))
    lines = path.read_text(encoding="utf-8").splitlines()
    assert (
        1 <= line <= len(lines) and lines[line - 1].strip() and not lines[line - 1].lstrip().startswith("#")
    )
    exc = run(path)
    if fields["fails"] == "no-learning":
        assert isinstance(exc, AssertionError), (
            f"{path.name}: {exc!r}; its asserts should show it does not learn"
        )
    else:
        assert exc is not None, f"{path.name} ran without an error"
        assert fields["fails"] in str(exc), f"{path.name}: torch said {exc!r}"


@pytest.mark.parametrize("path", [p for p in FILES if p.name in FIXES], ids=lambda p: p.name)
def test_fix_runs(path: Path) -> None:
    source = path.read_text(encoding="utf-8")
    for old, new in FIXES[path.name]:
        assert source.count(old) >= 1, f"{path.name}: {old!r} not found"
        source = source.replace(old, new)
    exc = run(path, source)
    assert exc is None, f"{path.name} still fails after its fix: {exc!r}"


def test_every_bug_has_a_fix_check() -> None:
    assert sorted(p.name for p in FILES) == sorted(FIXES)
