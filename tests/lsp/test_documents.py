"""The document store: position encodings, line endings, notebook cells."""

from __future__ import annotations

from types import SimpleNamespace

from gradguard.lsp.documents import UTF8, UTF16, UTF32, Cell, DocumentStore, Notebook, TextDoc, to_char_column


def change(sl, sc, el, ec, text):
    start = SimpleNamespace(line=sl, character=sc)
    end = SimpleNamespace(line=el, character=ec)
    return SimpleNamespace(range=SimpleNamespace(start=start, end=end), text=text)


def test_columns_in_each_encoding():
    line = "a𝔘é = 1"  # 𝔘: 2 UTF-16 units, 4 UTF-8 bytes; é: 1 unit, 2 bytes
    assert to_char_column(line, 3, UTF16) == 2
    assert to_char_column(line, 2, UTF32) == 2
    assert to_char_column(line, 5, UTF8) == 2
    assert to_char_column(line, 7, UTF8) == 3
    assert to_char_column(line, 2, UTF16) == 2  # inside the surrogate pair: rounds to the end
    assert to_char_column(line, 999, UTF16) == len(line)


def test_utf8_client_edits():
    doc = TextDoc("file:///x.py", "s = 'é'\n", 1)
    doc.apply_change(change(0, 7, 0, 7, "x"), UTF8)  # after the é (2 bytes)
    assert doc.text == "s = 'éx'\n"
    assert doc.client_position(0, 7, UTF8) == (0, 8)


def test_line_endings_only_at_cr_lf():
    doc = TextDoc("file:///x.py", "a\x0cb\u2028c\r\nd\re\n", 1)
    assert doc.lines == ["a\x0cb\u2028c\r\n", "d\r", "e\n"]
    doc.apply_change(change(2, 0, 2, 0, "\n"))  # "\r" then "\n": one line ending
    assert doc.text == "a\x0cb\u2028c\r\nd\r\ne\n"
    assert doc.lines == ["a\x0cb\u2028c\r\n", "d\r\n", "e\n"]
    doc.apply_change(change(1, 1, 2, 0, ""))  # delete the line ending
    assert doc.lines == ["a\x0cb\u2028c\r\n", "de\n"]


def test_whole_document_change_and_end_positions():
    doc = TextDoc("file:///x.py", "x", 1)
    doc.apply_change(SimpleNamespace(text="a\nb\n"))
    assert doc.lines == ["a\n", "b\n"]
    assert doc.position(2, 0) == (2, 0)  # the empty line after the last line break
    assert doc.position(7, 3) == (2, 0)
    doc.apply_change(change(2, 0, 2, 0, "c"))
    assert doc.text == "a\nb\nc"
    assert doc.position(9, 9) == (2, 1)
    assert doc.client_position(5, 0) == (2, 1)


def test_notebook_cells_combined_with_magics():
    store = DocumentStore()
    for uri, text in [
        ("c1", "%matplotlib inline\nimport torch"),
        ("c2", "!pip install x\n  %time f()\n"),
        ("c3", "%%bash\nls -l\n"),
    ]:
        store.open(uri, text, 1).notebook = "nb"
    store.open("md", "# title", 1).notebook = "nb"
    notebook = Notebook(
        "nb", "jupyter-notebook", 1, [Cell("c1", 2), Cell("md", 1), Cell("c2", 2), Cell("c3", 2)]
    )
    text, spans = store.combined(notebook)
    assert [(s.uri, s.start, s.count) for s in spans] == [("c1", 0, 2), ("c2", 2, 2), ("c3", 4, 2)]
    lines = text.splitlines()
    assert lines[0] == "#matplotlib inline" and lines[1] == "import torch"
    assert lines[2] == "#pip install x" and lines[3] == "  #time f()"
    assert lines[4].startswith("#") and lines[5].strip() in ("#", "")
    compile(text, "nb", "exec")
