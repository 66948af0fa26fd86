"""Proof by running: `gradguard check --fix` (and separately `--fix --unsafe-fixes`) on copies of the
real-bug corpus (tests/real_bugs/ and tests/real_bugs/shapes/, each file names its public source),
then every fixed file is run with torch (CPU, fixed seeds, all files in one subprocess per mode).

For every program:
* the fixed file parses;
* it does not fail in a new way: it runs cleanly, or (a fix that does not reach the bug, or a bug
  with no mechanical fix) still fails exactly the way the original did;
* the diff touches only the reported statements: each changed non-blank line of the original lies in a
  statement gradguard reported, in the compound statement (loop, function, ...) around it (the
  class, for a method), or in the statement just before that (a computation moved into a loop, a
  class added), or on a line holding a call the finding's message quotes (the first `backward()` of
  a GG404 pair);
* where it trains (it calls `backward()` at least `_TRAINS` times with scalar losses and the
  repaired program's losses are deterministic), the loss decreases.

A safe fix that leaves a program failing is a failure of this test, and so is an unsafe fix that
stops repairing a program it repaired (REPAIRED_UNSAFE / REPAIRED_SAFE are the floors). Running this
file as a script prints the per-rule table of bench/README.md.
"""

from __future__ import annotations

import ast
import difflib
import json
import os
import shutil
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE / "real_bugs"))

from cases import Case, load_cases  # noqa: E402 - the cases module sits beside the real bugs

pytestmark = pytest.mark.torch

_TRAINS = 5  # backward() calls on scalar losses from which a program counts as training

# Programs the safe fixes change but do not repair, and why (each must still fail only the way it did).
SAFE_NOT_REPAIRED = {
    # the fix deletes a dead `backward` method; the program asserts that method runs (fix: none)
    "sparsemax_module_backward": "GG101 removes dead code; the program wants its own backward to run",
    # two of its three running totals are fixed safely; the third is read after the loop as a tensor,
    # so its `.item()` rewrite is unsafe (--unsafe-fixes repairs the program)
    "trafficlight_running_losses": "GG405's third total is read after the loop: unsafe",
}
# Programs `--fix --unsafe-fixes` changes but does not repair, and why.
UNSAFE_NOT_REPAIRED = {
    "sparsemax_module_backward": "GG101 removes dead code; the program wants its own backward to run",
}


def _corpus() -> list[Case]:
    cases = load_cases(HERE / "real_bugs") + load_cases(HERE / "real_bugs" / "shapes")
    return [c for c in cases if not c.silent]


_RUNNER = r"""
import contextlib, io, json, random, runpy, sys, warnings
import numpy as np
import torch

torch.set_num_threads(1)
losses = []
_backward = torch.Tensor.backward


def backward(self, *args, **kwargs):
    if self.dim() == 0:
        losses.append(float(self.detach()))
    return _backward(self, *args, **kwargs)


torch.Tensor.backward = backward
for path in sys.argv[1:]:
    torch.manual_seed(0)
    np.random.seed(0)
    random.seed(0)
    losses.clear()
    error = None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
                runpy.run_path(path, run_name="__main__")
    except BaseException as exc:  # noqa: BLE001
        error = f"{type(exc).__name__}: {exc}"
    print(json.dumps({"path": path, "error": error, "losses": losses[:200]}), flush=True)
"""


def _env() -> dict:
    return {**os.environ, "PYTHONPATH": str(ROOT / "server"), "OMP_NUM_THREADS": "1"}


def _run_programs(paths: list[Path]) -> dict[str, dict]:
    done = subprocess.run(
        [sys.executable, "-c", _RUNNER, *map(str, paths)],
        capture_output=True,
        check=False,
        text=True,
        env=_env(),
        timeout=400,
    )
    results = {}
    for line in done.stdout.splitlines():
        item = json.loads(line)
        results[Path(item["path"]).stem] = item
    assert len(results) == len(paths), done.stderr[-3000:]
    return results


def _gradguard(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "gradguard", "check", "--no-project", "--exit-zero", *args],
        capture_output=True,
        check=False,
        text=True,
        env=_env(),
        timeout=300,
    )


def _fails_as_before(case: Case, error: str | None) -> bool:
    if error is None:
        return False
    if case.fails == "no-learning":
        return error.startswith("AssertionError")
    return case.fails in error


def _allowed_lines(source: str, finding_lines: list[int]) -> set[int]:
    """Lines of the reported statements, of the compound statement around each, and of the statement
    just before that compound statement (1-based)."""
    tree = ast.parse(source)
    allowed: set[int] = set()
    parents: dict[ast.AST, ast.AST] = {}
    for node in ast.walk(tree):
        for child in ast.iter_child_nodes(node):
            parents[child] = node

    def span(node: ast.AST) -> range:
        start = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])])
        return range(start, (node.end_lineno or node.lineno) + 1)

    statements = [n for n in ast.walk(tree) if isinstance(n, ast.stmt)]
    for line in finding_lines:
        inner = [s for s in statements if s.lineno <= line <= (s.end_lineno or s.lineno)]
        if not inner:
            continue
        reported = max(inner, key=lambda s: s.lineno)  # the innermost statement starting last
        allowed.update(span(reported))
        compound = parents.get(reported)
        while compound is not None and not isinstance(compound, ast.stmt):
            compound = parents.get(compound)
        if compound is None:
            continue
        allowed.update(span(compound))
        outer = parents.get(compound)
        if isinstance(compound, (ast.FunctionDef, ast.AsyncFunctionDef)) and isinstance(outer, ast.ClassDef):
            allowed.update(span(outer))  # a method's fix may reach its sibling (forward -> backward)
            compound, outer = outer, parents.get(outer)
        block = next(
            (
                getattr(outer, f)
                for f in ("body", "orelse", "finalbody")
                if outer is not None and compound in getattr(outer, f, [])
            ),
            None,
        )
        if block is not None and block.index(compound) > 0:
            allowed.update(span(block[block.index(compound) - 1]))
        allowed.add(span(compound).start - 1)  # blank line / new class just before it
    return allowed


def _named_lines(source: str, messages: list[str]) -> set[int]:
    """Lines holding a call the findings' messages quote (`errD_fake.backward()` of a GG404 pair)."""
    quoted = {q for m in messages for q in m.split("`")[1::2] if "(" in q and len(q) > 4}
    return {n for n, line in enumerate(source.splitlines(), 1) if any(q in line for q in quoted)}


def _changed_lines(before: str, after: str) -> list[set[int]]:
    """What the diff touches in `before`: a set per changed line ({n}), and per insertion the two
    lines around it (touching either neighbour is enough). Blank lines go with a deletion."""
    lines = before.splitlines()
    touched: list[set[int]] = []
    matcher = difflib.SequenceMatcher(a=lines, b=after.splitlines(), autojunk=False)
    for tag, i1, i2, _, _ in matcher.get_opcodes():
        if tag == "equal":
            continue
        if i1 == i2:  # an insertion between lines i1 and i1 + 1
            touched.append({max(i1, 1), i1 + 1})
        touched.extend({n} for n in range(i1 + 1, i2 + 1) if lines[n - 1].strip())
    return touched


@pytest.fixture(scope="module")
def outcome(tmp_path_factory):
    return compute(tmp_path_factory.mktemp("fix_corpus_run"))


def compute(tmp: Path) -> dict:
    cases = _corpus()
    originals = tmp / "original"
    originals.mkdir()
    for case in cases:
        shutil.copy(case.path, originals / case.path.name)
    report = _gradguard("--format", "json", "-j", "2", str(originals))
    findings: dict[str, list[dict]] = defaultdict(list)
    for item in json.loads(report.stdout):
        findings[Path(item["path"]).stem].append(item)
    result = {"cases": cases, "findings": findings}
    for mode, flags in (("safe", ["--fix"]), ("unsafe", ["--fix", "--unsafe-fixes"])):
        folder = tmp / mode
        shutil.copytree(originals, folder)
        done = _gradguard(*flags, "-j", "2", str(folder))
        assert done.returncode in (0, 1), done.stderr[-3000:]
        texts = {c.name: (folder / c.path.name).read_text(encoding="utf-8") for c in cases}
        changed = [c for c in cases if texts[c.name] != c.path.read_text(encoding="utf-8")]
        runs = _run_programs([folder / c.path.name for c in changed])
        result[mode] = {"texts": texts, "changed": [c.name for c in changed], "runs": runs}
    return result


def _applied(findings: list[dict], mode: str) -> list[dict]:
    kinds = ("safe",) if mode == "safe" else ("safe", "unsafe")
    return [f for f in findings if f.get("fix") and f["fix"]["applicability"] in kinds]


def test_corpus_is_large_enough(outcome):
    assert len(outcome["cases"]) >= 40


@pytest.mark.parametrize("mode", ["safe", "unsafe"])
def test_fixed_programs_parse_and_touch_only_reported_statements(outcome, mode):
    for case in outcome["cases"]:
        text = outcome[mode]["texts"][case.name]
        original = case.path.read_text(encoding="utf-8")
        if text == original:
            continue
        ast.parse(text)
        applied = _applied(outcome["findings"][case.name], mode)
        assert applied, f"{case.name}: changed by {mode} fixes without a finding that has one"
        allowed = _allowed_lines(original, [f["line"] for f in applied])
        allowed |= _named_lines(original, [f["message"] for f in applied])
        stray = sorted(min(t) for t in _changed_lines(original, text) if not t & allowed)
        assert not stray, f"{case.name} ({mode}): lines {stray} are outside the reported statements"


@pytest.mark.parametrize("mode", ["safe", "unsafe"])
def test_fixed_programs_run(outcome, mode):
    not_repaired = SAFE_NOT_REPAIRED if mode == "safe" else UNSAFE_NOT_REPAIRED
    problems = []
    for case in outcome["cases"]:
        if case.name not in outcome[mode]["changed"]:
            continue
        run = outcome[mode]["runs"][case.name]
        error = run["error"]
        if error is None:
            if case.name in not_repaired:
                problems.append(f"{case.name}: now repaired; drop it from the not-repaired list")
            losses = run["losses"]
            if len(losses) >= _TRAINS and min(losses[-2:]) >= losses[0]:
                problems.append(f"{case.name}: runs but does not train: {losses[:3]} ... {losses[-3:]}")
            continue
        if not _fails_as_before(case, error):
            problems.append(f"{case.name}: the fixed program fails in a new way: {error[:300]}")
        elif case.name not in not_repaired:
            problems.append(f"{case.name}: {mode} fixes leave it failing: {error[:200]}")
    assert not problems, "\n".join(problems)


def repaired(outcome, mode: str) -> list[str]:
    return sorted(n for n in outcome[mode]["changed"] if outcome[mode]["runs"][n]["error"] is None)


# What the fixes repair today (floors: a program dropping out of these is a regression).
REPAIRED_SAFE = {
    "bce_target_missing_channel",
    "bifpn_relu_on_weight",
    "cross_entropy_column_target",
    "cross_entropy_one_hot_flattened",
    "d2l_sgd_helper_without_no_grad",
    "gdn_lowerbound_legacy",
    "image_comp_sign_grad_count",
    "images_not_flattened_typo",
    "leaf_chunk_manual_update",
    "linear_dct_require_grad",
    "manual_sgd_param_add",
    "matmul_weight_orientation",
    "mse_column_vs_vector",
    "mult_function_instance_loop",
    "sparsellm_s_batch_update",
    "tensor_train_loss_history",
    "view_after_transpose_attention",
}
REPAIRED_UNSAFE = REPAIRED_SAFE | {
    "adder_backward_no_return",
    "batchnorm_running_mean_graph",
    "conv_branch_inplace_add",
    "conv_to_linear_in_features",
    "conv_weight_slice_copy",
    "convlstm_peephole_weights",
    "court_trainer_no_zero_grad",
    "ctx_output_attribute_leak",
    "dcgan_fake_not_detached",
    "deblur_loss_list_tensor",
    "edit_knowledge_neuron",
    "exp_output_overwritten",
    "feedforward_activation_list",
    "finetune_loss_sum",
    "fmri_lstm_self_hidden",
    "gan_encoder_missing_d_zero_grad",
    "gan_gdpp_second_backward",
    "gan_generator_pred_fake_detached",
    "kernel_conv_grad_count",
    "keypoints_view_merges_batch",
    "kws_executor_no_zero_grad",
    "label_model_running_loss",
    "lenet_on_28x28",
    "linreg_from_numpy_mm",
    "linear_on_pooled_map",
    "lstm_classifier_self_hidden_train",
    "meta_optimizer_lstm_list",
    "mlp_dataset_from_numpy",
    "microbatch_zero_grad_inside",
    "mm_row_update_loop",
    "moe_balance_loss_tensor",
    "parameter_list_to_tensor",
    "policy_chunk_clamp",
    "pulse_grad_amplitude_tensor",
    "reinforce_loss_numpy",
    "rnn_regression_h_state",
    "scene_completion_loss_dict",
    "sigmoid_output_index_write",
    "snli_hidden_layer_list",
    "stylemap_two_backwards",
    "text_cnn_conv1d_list",
    "three_layer_net_in_forward",
    "trafficlight_running_losses",
    "trainer_tr_loss_training_step",
    "transformer_linear_in_forward",
    "vq_affine_buffer_ema",
    "wavernn_upsample_weight_fill",
}


@pytest.mark.parametrize("mode", ["safe", "unsafe"])
def test_fixes_still_repair_what_they_repaired(outcome, mode):
    floor = REPAIRED_SAFE if mode == "safe" else REPAIRED_UNSAFE
    assert floor - set(repaired(outcome, mode)) == set()


def test_programs_left_failing_have_no_mechanical_fix(outcome):
    """`--fix --unsafe-fixes` repairs every program whose bug has a mechanical fix: the others say
    `fix: none (why)` in their header (or are listed, with the reason, in UNSAFE_NOT_REPAIRED)."""
    fixed = set(repaired(outcome, "unsafe"))
    unmarked = [
        c.name
        for c in outcome["cases"]
        if c.name not in fixed and c.name not in UNSAFE_NOT_REPAIRED and c.fix.split()[0] != "none"
    ]
    assert not unmarked, f"not repaired, yet their header names a mechanical fix: {unmarked}"


def test_unsafe_fixes_repair_at_least_what_safe_fixes_repair(outcome):
    assert set(repaired(outcome, "safe")) <= set(repaired(outcome, "unsafe"))


def per_rule_table(outcome) -> list[tuple[str, int, int]]:
    """(rule, programs repaired by --fix in which the rule's fix applied, same for --unsafe-fixes)."""
    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for column, mode in enumerate(("safe", "unsafe")):
        for name in repaired(outcome, mode):
            for code in {f["code"] for f in _applied(outcome["findings"][name], mode)}:
                counts[code][column] += 1
    return sorted((code, safe, unsafe) for code, (safe, unsafe) in counts.items())


if __name__ == "__main__":  # print the numbers and the per-rule table (bench/README.md)
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        data = compute(Path(folder))
    with_fix = [c for c in data["cases"] if _applied(data["findings"][c.name], "unsafe")]
    print(f"corpus: {len(data['cases'])} buggy programs, {len(with_fix)} with a fix offered")
    for mode in ("safe", "unsafe"):
        print(f"{mode}: changed {len(data[mode]['changed'])}, repaired {len(repaired(data, mode))}")
        for name in data[mode]["changed"]:
            error = data[mode]["runs"][name]["error"]
            print(f"   {name}: {'repaired' if error is None else error[:150]}")
    print("| rule | repaired (--fix) | repaired (--unsafe-fixes) |")
    for code, safe, unsafe in per_rule_table(data):
        print(f"| {code} | {safe} | {unsafe} |")
