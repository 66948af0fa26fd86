"""`--fix` never changes what it did not report (issue 15).

* Every fixable rule example and every file of tests/fix_corpus/, in every formatting variant
  of fix_variants.py, fixed the way `gradguard check --fix` does it (read, fix, write): the
  result compiles, keeps its encoding, byte order mark, line endings and comments, and its
  code is the plain example's fix (or the original, when the fix is not offered there).
* The issue's cases, exactly: `opt.zero_grad(); opt.step()`, `self.weight += x; return
  self.weight` (run with torch before and after), comments in replaced expressions and
  after moved statements.
* Writing: a full disk, a kill at any point of the write, a read-only file.
"""

import ast
import errno
import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from fix_variants import CORPUS, comments, examples, problems, tree_of, variants
from gradguard.engine.analyzer import Analyzer
from gradguard.engine.files import WriteRefused, read_source_file, write_source

EXAMPLES = examples()


def fix_file(path: Path, unsafe: bool) -> int:
    """What `check --fix` does to one file, in-process."""
    source = read_source_file(path)
    fixed, applied = Analyzer().fix(source.text, str(path), unsafe=unsafe)
    if applied and fixed != source.text:
        write_source(source, fixed)
    return applied


@pytest.mark.parametrize("name,code", EXAMPLES, ids=[n for n, _ in EXAMPLES])
def test_formatting_variants_are_fixed_safely(tmp_path, name, code):
    failures = []
    for unsafe in (False, True):
        plain = tmp_path / "plain.py"
        plain.write_text(code)
        fix_file(plain, unsafe)
        reference = [tree_of(plain.read_bytes())]
        for variant in variants(name, code):
            path = tmp_path / "v.py"
            path.write_bytes(variant.data)
            try:
                fix_file(path, unsafe)
            except WriteRefused as exc:
                failures.append(f"{variant.name} unsafe={unsafe}: not written: {exc}")
                continue
            for problem in problems(variant, path.read_bytes(), reference):
                failures.append(f"{variant.name} unsafe={unsafe}: {problem}")
            assert not [p for p in tmp_path.iterdir() if p.name.startswith(".gradguard-")]
    assert not failures, "\n".join(failures[:20])


def fixed_text(code: str, tmp_path: Path, unsafe: bool = True) -> str:
    path = tmp_path / "x.py"
    path.write_text(code)
    fix_file(path, unsafe)
    return path.read_text()


def corpus(name: str) -> str:
    return (CORPUS / name).read_text()


def test_semicolon_zero_grad_step_keeps_the_step(tmp_path):
    fixed = fixed_text(corpus("semicolon_zero_grad_step.py"), tmp_path)
    assert fixed.endswith(
        "        loss = torch.nn.functional.mse_loss(model(x), y)\n"
        "        opt.zero_grad()\n"
        "        loss.backward()\n"
        "        opt.step()\n"
    )


def test_semicolon_step_backward_moves_only_the_step(tmp_path):
    fixed = fixed_text(corpus("semicolon_step_backward.py"), tmp_path)
    assert fixed.endswith(
        "        opt.zero_grad()\n"
        "        out = model(x)\n"
        "        loss = torch.nn.functional.mse_loss(out, y); loss.backward(); opt.step(); print(loss.item())\n"
    )


def test_moved_statements_keep_their_comments(tmp_path):
    fixed = fixed_text(corpus("moved_statement_comments.py"), tmp_path)
    assert "        opt.zero_grad()  # start from clean gradients\n        loss.backward()" in fixed
    assert "        loss.backward()\n        opt.step()  # the update, too early\n" in fixed
    assert comments(fixed) == comments(corpus("moved_statement_comments.py"))


def test_comments_in_replaced_expressions_survive(tmp_path):
    original = corpus("comments_in_replaced_expression.py")
    fixed = fixed_text(original, tmp_path)
    assert "x = torch.relu(x)" in fixed and "torch.stack(" in fixed and "x.float()" in fixed
    assert comments(fixed) == comments(original)
    assert "        # the negative entries\n        x = torch.relu(x)  # clip them\n" in fixed


def test_comments_of_deleted_code_survive_a_safe_fix(tmp_path):
    original = corpus("deleted_code_comments.py")
    fixed = fixed_text(original, tmp_path, unsafe=False)
    assert "def backward" not in fixed
    assert comments(fixed) == comments(original)


def test_dropped_comments_go_to_the_nearest_line_that_can_take_them():
    from gradguard.engine.finding import TextEdit
    from gradguard.engine.fix_guard import guard_edits
    from gradguard.engine.source import SourceFile

    # the replaced call starts on a line that begins inside a string: the comment goes to the
    # line where the statement starts
    text = 'x = """a\nb""" + f(1,  # keep me\n  2)\n'
    guarded = guard_edits(SourceFile(text), [TextEdit(2, 9, 3, 5, "g(1, 2)")], {})
    assert guarded is not None and TextEdit(1, 1, 1, 1, "# keep me\n") in guarded
    # a comment the new text carries along is not repeated
    text = "y = f(1,  # keep me\n  2)\n"
    edit = TextEdit(1, 5, 2, 5, "g(1,  # keep me\n  2)")
    assert guard_edits(SourceFile(text), [edit], {}) == [edit]
    # a text that cannot be tokenized: a comment might be lost, so the fix is dropped
    assert guard_edits(SourceFile("y = f(1,  # c\n"), [TextEdit(1, 5, 1, 14, "g(1,")], {}) is None
    # line endings follow the file's
    crlf = guard_edits(SourceFile("a = 1\r\nb = 2\r\n"), [TextEdit(2, 1, 2, 1, "c = 3\n")], {})
    assert crlf == [TextEdit(2, 1, 2, 1, "c = 3\r\n")]


@pytest.mark.torch
def test_gg201_fix_keeps_the_returned_value(tmp_path):
    """`self.weight += x; return self.weight`: the fix must return the updated value, not the
    unchanged parameter. Run with torch before and after."""
    torch = pytest.importorskip("torch")
    original = corpus("semicolon_inplace_parameter.py")
    fixed = fixed_text(original, tmp_path, unsafe=False)
    assert "weight = self.weight + x; return weight" in fixed

    def load(code):
        namespace = {}
        exec(compile(code, "<module>", "exec"), namespace)  # noqa: S102 - the fixed code is run on purpose
        return namespace["Shift"]()

    x = torch.tensor([1.0, 2.0, 3.0])
    before = load(original)
    with torch.no_grad():  # the original only runs without gradients
        expected = before(x).clone()
    with pytest.raises(RuntimeError, match="leaf Variable that requires grad"):
        before(x)
    after = load(fixed)
    out = after(x)
    assert torch.equal(out.detach(), expected)
    out.sum().backward()
    assert torch.equal(after.weight.grad, torch.ones(3))


# -- writing ---------------------------------------------------------------------------------------
BUGGY = corpus("comments_in_replaced_expression.py")


def _prepare(tmp_path, text=BUGGY, links=False):
    path = tmp_path / "m.py"
    path.write_text(text)
    if links:
        os.link(path, tmp_path / "twin.txt")
    source = read_source_file(path)
    fixed, applied = Analyzer().fix(source.text, str(path), unsafe=True)
    assert applied
    return path, source, fixed


def _leftovers(tmp_path):
    return [p.name for p in tmp_path.iterdir() if p.name.startswith(".gradguard-")]


@pytest.mark.parametrize("links", [False, True], ids=["replace", "in-place"])
def test_disk_full_leaves_the_file_unchanged(tmp_path, monkeypatch, links):
    """A fault-injecting double for a full disk: every write after the first 100 bytes fails
    with ENOSPC (the CLI test does the same with RLIMIT_FSIZE and the real kernel)."""
    path, source, fixed = _prepare(tmp_path, links=links)
    real = os.pwrite

    def full_disk(fd, data, offset):
        if offset + len(data) > 100:
            if offset < 100:
                return real(fd, bytes(data[: 100 - offset]), offset)
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(fd, data, offset)

    monkeypatch.setattr(os, "pwrite", full_disk)
    with pytest.raises(WriteRefused, match="No space left on device"):
        write_source(source, fixed)
    monkeypatch.undo()
    assert path.read_text() == BUGGY
    assert not _leftovers(tmp_path)


class Killed(BaseException):
    """Stands for SIGKILL at that point: nothing after it runs (except finally blocks, which
    a real kill would not run either: the assertions only rely on what is on disk)."""


@pytest.mark.parametrize("point", ["pwrite", "fsync", "replace", "ftruncate"])
@pytest.mark.parametrize("links", [False, True], ids=["replace", "in-place"])
def test_a_kill_at_any_point_leaves_old_or_new_code(tmp_path, monkeypatch, point, links):
    path, source, fixed = _prepare(tmp_path, links=links)
    calls = {"n": 0}
    real = getattr(os, point)

    def dies(*args, **kwargs):
        calls["n"] += 1
        raise Killed

    monkeypatch.setattr(os, point, dies)
    try:
        write_source(source, fixed)
    except Killed:
        pass
    monkeypatch.setattr(os, point, real)
    data = path.read_bytes()
    assert data == BUGGY.encode() or ast.dump(ast.parse(data)) == ast.dump(ast.parse(fixed))
    compile(data, "m.py", "exec")


def test_in_place_rewrite_pads_until_it_truncates(tmp_path, monkeypatch):
    """Hard-linked files are rewritten in place: the new code padded with blanks to the old
    length, then cut. Killed before the cut, the file is the new code plus blanks."""
    path, source, fixed = _prepare(tmp_path, links=True)
    assert len(fixed.encode()) < len(BUGGY.encode())
    monkeypatch.setattr(os, "ftruncate", lambda *a: (_ for _ in ()).throw(Killed))
    with pytest.raises(Killed):
        write_source(source, fixed)
    monkeypatch.undo()
    data = path.read_bytes()
    assert data.rstrip(b" ") == fixed.encode() and len(data) == len(BUGGY.encode())
    assert (tmp_path / "twin.txt").read_bytes() == data


def test_read_only_file_is_refused(tmp_path):
    path, source, fixed = _prepare(tmp_path)
    os.chmod(path, 0o444)
    with pytest.raises(WriteRefused, match="read-only"):
        write_source(source, fixed)
    assert path.read_text() == BUGGY


def test_changed_or_deleted_file_is_not_written(tmp_path):
    path, source, fixed = _prepare(tmp_path)
    path.write_text(BUGGY + "# edited\n")
    with pytest.raises(WriteRefused, match="changed since it was read"):
        write_source(source, fixed)
    assert path.read_text().endswith("# edited\n")
    path.unlink()
    with pytest.raises(WriteRefused, match="deleted"):
        write_source(source, fixed)
    assert not path.exists()
