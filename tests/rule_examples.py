"""Collects every rule's VALID/INVALID examples for parametrised tests."""

from gradguard.engine.rule import all_rules


def valid_cases():
    for code, rule in all_rules().items():
        for index, example in enumerate(rule.VALID):
            yield pytest_param(code, rule, index, example)


def invalid_cases():
    for code, rule in all_rules().items():
        for index, example in enumerate(rule.INVALID):
            yield pytest_param(code, rule, index, example)


def pytest_param(code, rule, index, example):
    import pytest

    return pytest.param(rule, example, id=f"{code}-{index}")
