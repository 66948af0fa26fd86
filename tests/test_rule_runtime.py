"""Where a rule says PyTorch fails, run the example with torch and see it fail; where it
offers a fix, run the fixed code and see it work."""

import pytest

from rule_examples import invalid_cases, valid_cases

torch = pytest.importorskip("torch")

pytestmark = pytest.mark.torch


def execute(code: str) -> None:
    torch.manual_seed(0)
    namespace = {"__name__": "__gradguard_example__"}
    exec(compile(code, "<example>", "exec"), namespace)


def runnable(example) -> bool:
    return example.raises is not None or bool(example.check_fixed)


@pytest.mark.parametrize("rule,example", [p for p in invalid_cases() if runnable(p.values[1])])
def test_invalid_fails_as_claimed_and_fix_works(rule, example):
    program = example.code + "\n" + example.run + "\n"
    if example.raises is not None:
        with pytest.raises(Exception) as info:
            execute(program)
        assert example.raises in str(info.value), f"{rule.code}: {info.value}"
    if example.fixed is not None:
        execute(example.fixed + "\n" + example.run + "\n" + example.check_fixed + "\n")


@pytest.mark.parametrize("rule,example", [p for p in valid_cases() if p.values[1].run])
def test_valid_runs_cleanly(rule, example):
    execute(example.code + "\n" + example.run + "\n")
