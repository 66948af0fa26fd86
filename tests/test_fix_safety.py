"""Every rule that offers a fix says what the fix changes besides the bug (a "Fix safety" section of
its explanation), and `gradguard explain` shows it."""

import subprocess
import sys
from pathlib import Path

import pytest
from gradguard.engine.rule import all_rules

ROOT = Path(__file__).resolve().parent.parent
FIXING = [rule for rule in all_rules().values() if rule.fix_applicability is not None]


def test_most_rules_with_a_fix_are_checked():
    assert len(FIXING) >= 20


@pytest.mark.parametrize("rule", FIXING, ids=[r.code for r in FIXING])
def test_rule_with_a_fix_documents_its_safety(rule):
    explanation = rule.full_explanation()
    assert "**Fix safety.**" in explanation, f"{rule.code} has a fix but no Fix safety section"
    section = explanation.split("**Fix safety.**", 1)[1].split("\n\n", 1)[0]
    words = {"safe", "safe:", "safe.", "unsafe", "unsafe:", "unsafe."}
    assert words & set(section.lower().replace(",", " ").split()), f"{rule.code}: say safe or unsafe"


def test_rules_without_a_fix_have_no_fix_safety_section():
    for rule in all_rules().values():
        if rule.fix_applicability is None:
            assert "**Fix safety.**" not in rule.explanation, rule.code


def test_explain_shows_fix_safety():
    done = subprocess.run(
        [sys.executable, "-m", "gradguard", "explain", "GG602"],
        capture_output=True,
        check=False,
        text=True,
        env={"PYTHONPATH": str(ROOT / "server"), "PATH": ""},
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "Fix safety." in done.stdout and "stray `self`" in done.stdout


def test_gg509_log_of_softmax_is_no_repair():
    """GG509's explanation: `F.nll_loss(torch.log(softmax(z)), y)` (keeping a model that returns
    probabilities) gives `inf` and `nan` gradients where `cross_entropy(z, y)` stays finite."""
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    logits = torch.tensor([[0.0, 120.0, -20.0]], requires_grad=True)
    target = torch.tensor([0])
    rewritten = F.nll_loss(torch.log(torch.softmax(logits, dim=1)), target)
    rewritten.backward()
    assert torch.isinf(rewritten) and torch.isnan(logits.grad).all()
    logits.grad = None
    direct = F.cross_entropy(logits, target)
    direct.backward()
    assert torch.isfinite(direct) and torch.isfinite(logits.grad).all()
    assert "is not a repair either" in all_rules()["GG509"].explanation
