"""docs/reference/cli.md carries every command's --help, generated from the parser: it cannot
drift from the CLI."""

from __future__ import annotations

from pathlib import Path

import pytest

import ocs.cli_reference as reference
from ocs.cli import build_parser


def test_committed_page_is_current() -> None:
    text = reference.PAGE.read_text(encoding="utf-8")
    assert reference.updated_page(text) == text, "run python -m ocs.cli_reference --write"
    assert reference.main(["--check"]) == 0


def test_every_command_has_its_section() -> None:
    text = reference.PAGE.read_text(encoding="utf-8")
    leaves = [words for words, _ in reference.leaf_parsers(build_parser())]
    assert ("serve",) in leaves and ("catalog", "load") in leaves and ("sim",) in leaves
    for words in leaves:
        assert f"### `ocs {' '.join(words)}`" in text
        assert f"usage: ocs {' '.join(words)}" in text


def test_hand_written_parts_are_kept(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    page = tmp_path / "cli.md"
    page.write_text(
        f"# intro\n\n{reference.BEGIN}\nold help\n{reference.END}\n\nafter\n", encoding="utf-8"
    )
    monkeypatch.setattr(reference, "PAGE", page)
    monkeypatch.setattr(reference, "ROOT", tmp_path)
    assert reference.main(["--check"]) == 1
    assert reference.main(["--write"]) == 0
    text = page.read_text(encoding="utf-8")
    assert text.startswith("# intro\n\n") and text.endswith(f"{reference.END}\n\nafter\n")
    assert "old help" not in text and "usage: ocs serve" in text
