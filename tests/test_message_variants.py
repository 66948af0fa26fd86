"""Message variants are typed: each is a `Message` that declares its parameters (the `{names}` in its
template), `format()` takes exactly those, every variant of every rule renders with its declared
parameters, and every `self.<variant>.format(...)` in a rule passes exactly them."""

from __future__ import annotations

import ast
import inspect
import re
import sys

import pytest
from gradguard.engine.rule import Message, Rule, all_rules, split_message

PLACEHOLDER = re.compile(r"(?<!\{)\{[A-Za-z_]\w*\}(?!\})")
# the class attributes that hold message text (the rest, e.g. `explanation`, is markdown with code)
VARIANT_NAME = re.compile(r"^(message|\w+_message|_[A-Z][A-Z_]*)$")


def variants(rule: type[Rule]) -> dict[str, Message]:
    """The rule's message variants, its own and inherited (not `Rule`'s)."""
    found: dict[str, Message] = {}
    for klass in reversed(rule.__mro__):
        if klass is Rule or not issubclass(klass, Rule):
            continue
        found.update({name: value for name, value in vars(klass).items() if isinstance(value, Message)})
    return found


RULES = sorted(all_rules().items())
VARIANTS = [
    pytest.param(rule, name, message, id=f"{code}.{name}")
    for code, rule in RULES
    for name, message in sorted(variants(rule).items())
]


def test_a_message_declares_the_names_in_its_template():
    message = Message("`{loss}` reaches `{model}` through {{braces}} and `{loss}` again")
    assert message.params == {"loss", "model"}
    assert message.format(loss="l", model="m") == "`l` reaches `m` through {braces} and `l` again"
    assert Message("no parameters").params == frozenset()
    assert isinstance(message, str)  # the docs and the catalog read the template as text


@pytest.mark.parametrize(
    "params",
    [{"loss": "l"}, {"loss": "l", "model": "m", "extra": "x"}, {}],
    ids=["missing", "unknown", "none"],
)
def test_format_refuses_a_missing_or_unknown_name(params):
    with pytest.raises(TypeError, match="takes \\['loss', 'model'\\]"):
        Message("`{loss}` reaches `{model}`").format(**params)


def test_format_refuses_positional_values_and_template_fields_that_are_not_names():
    with pytest.raises(TypeError, match="by name"):
        Message("`{loss}`").format("l")
    for template in ("{0} and {1}", "{}", "{loss.name}", "{shape[0]}"):
        with pytest.raises(ValueError, match="not a plain name"):
            Message(template)


def test_every_rule_has_its_variants_typed():
    """A class attribute that reads like a message template is a `Message` (so it declares its
    parameters), and every rule's default `message` is one."""
    loose = []
    for code, rule in RULES:
        if not isinstance(rule.message, Message):
            loose.append(f"{code}.message")
        for name, value in vars(rule).items():
            typed = not isinstance(value, str) or isinstance(value, Message)
            if not typed and (
                VARIANT_NAME.match(name) or (name not in _DOC_FIELDS and PLACEHOLDER.search(value))
            ):
                loose.append(f"{code}.{name}")
    assert loose == []
    assert len(VARIANTS) >= len(RULES)


_DOC_FIELDS = {"code", "name", "summary", "explanation", "why", "__module__", "__qualname__", "__doc__"}


@pytest.mark.parametrize(("rule", "name", "message"), VARIANTS)
def test_every_variant_renders_with_its_declared_parameters(rule, name, message):
    values = {param: f"<{param}-value>" for param in message.params}
    text = message.format(**values)
    for value in values.values():
        assert value in text
    assert not PLACEHOLDER.search(text.replace("{{", "").replace("}}", "")), text
    short, _ = split_message(text)
    assert short and short == short.strip()


def _format_calls(rule: type[Rule]) -> list[tuple[str, int, set[str] | None]]:
    """(variant name, line, keyword names or None for `**kwargs`) of each `self.<variant>.format(...)`
    in the rule's module."""
    tree = ast.parse(inspect.getsource(sys.modules[rule.__module__]))
    calls = []
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "format"
            and isinstance(node.func.value, ast.Attribute)
            and isinstance(node.func.value.value, ast.Name)
            and node.func.value.value.id == "self"
        ):
            names = {k.arg for k in node.keywords}
            calls.append((node.func.value.attr, node.lineno, None if None in names else names))
    return calls


@pytest.mark.parametrize(("code", "rule"), RULES, ids=[code for code, _ in RULES])
def test_every_format_call_passes_the_declared_parameters(code, rule):
    """Static: a variant filled in a branch the examples do not reach still gets its names right."""
    declared = variants(rule)
    wrong = []
    for name, line, passed in _format_calls(rule):
        assert name in declared, f"{code}: `self.{name}.format` on line {line} is not a Message variant"
        if passed is not None and passed != declared[name].params:
            wrong.append(
                f"line {line}: self.{name} takes {sorted(declared[name].params)}, gets {sorted(passed)}"
            )
    assert wrong == []


def test_the_static_check_sees_a_wrong_call(monkeypatch):
    """The check above is not vacuous: a variant that declares other names than a call passes fails it."""
    code, rule = next((c, r) for c, r in RULES if any(n == "message" for n, _, _ in _format_calls(r)))
    monkeypatch.setattr(rule, "message", Message("only {something_else}"))
    with pytest.raises(AssertionError, match="something_else"):
        test_every_format_call_passes_the_declared_parameters(code, rule)
