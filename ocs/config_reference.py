"""The configuration reference, generated from ``ocs/config.py`` itself so it cannot drift.

Every section is a msgspec Struct in ``Config``; its docstring describes the section and the
comment block right above each field (or the comment at the end of its line) describes the key.
Types and defaults come from the Structs. Two files are generated:

- ``docs/reference/configuration.md``: key, type, default, environment variable, description;
- ``examples/config.toml``: every key with its default, ready to copy and edit.

``python -m ocs.config_reference --write`` rewrites both; ``--check`` exits 1 when either differs
from what the code would generate (``tests/ocs/test_config_reference.py`` does the same).
"""

from __future__ import annotations

import argparse
import ast
import inspect
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec

from ocs import config as config_module
from ocs.config import ENV_PREFIX, Config

ROOT = Path(__file__).resolve().parents[1]
DOC_PATH = ROOT / "docs" / "reference" / "configuration.md"
EXAMPLE_PATH = ROOT / "examples" / "config.toml"
REGENERATE = "python -m ocs.config_reference --write"


@dataclass(frozen=True)
class Key:
    section: str
    name: str
    type_text: str  # as written in config.py
    default: Any
    description: str

    @property
    def env(self) -> str:
        return f"{ENV_PREFIX}{self.section.upper()}_{self.name.upper()}"


@dataclass(frozen=True)
class Section:
    name: str
    description: str
    keys: tuple[Key, ...]


def _comments_above(lines: list[str], lineno: int) -> list[str]:
    """The contiguous ``#`` lines right above line ``lineno`` (1-based), in order."""
    found: list[str] = []
    index = lineno - 2
    while index >= 0 and lines[index].strip().startswith("#"):
        found.append(lines[index].strip().lstrip("#").strip())
        index -= 1
    return list(reversed(found))


def _trailing_comment(line: str) -> str:
    # Defaults here are plain literals; a "#" inside a string default would need a tokenizer.
    code, sep, comment = line.partition("  #")
    return comment.strip() if sep and code.strip() else ""


def _struct_docs(cls: type[msgspec.Struct]) -> tuple[str, dict[str, tuple[str, str]]]:
    """(section description, {field: (annotation text, description)}) read from the source."""
    source_lines = inspect.getsource(config_module).splitlines()
    tree = ast.parse("\n".join(source_lines))
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.name == cls.__name__:
            fields: dict[str, tuple[str, str]] = {}
            for item in node.body:
                if isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
                    above = _comments_above(source_lines, item.lineno)
                    text = " ".join(above) or _trailing_comment(source_lines[item.lineno - 1])
                    fields[item.target.id] = (ast.unparse(item.annotation), text)
            return " ".join((ast.get_docstring(node) or "").split()), fields
    raise LookupError(f"{cls.__name__} is not defined in ocs/config.py")


def sections() -> tuple[Section, ...]:
    """Every section of ``Config`` in declaration order, with its keys."""
    out: list[Section] = []
    for section_field in msgspec.structs.fields(Config):
        cls = section_field.type
        description, docs = _struct_docs(cls)
        defaults = cls()
        keys = tuple(
            Key(
                section=section_field.name,
                name=field.name,
                type_text=docs[field.name][0],
                default=getattr(defaults, field.name),
                description=docs[field.name][1],
            )
            for field in msgspec.structs.fields(cls)
        )
        out.append(Section(section_field.name, description, keys))
    return tuple(out)


def _type_name(type_text: str) -> str:
    names = {"str": "string", "int": "integer", "float": "number", "bool": "boolean"}
    if type_text.startswith("tuple["):
        inner = type_text[len("tuple[") :].split(",")[0].strip()
        return f"list of {names.get(inner, inner)}"
    optional = type_text.endswith("| None")
    base = type_text.removesuffix("| None").strip()
    return names.get(base, base) + (" (optional)" if optional else "")


def toml_value(value: Any) -> str:
    """A default written as TOML (None has no TOML form: the caller leaves the key out)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, tuple):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    raise TypeError(f"no TOML form for {value!r}")


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def render_markdown(all_sections: tuple[Section, ...]) -> str:
    lines = [
        "# Configuration",
        "",
        "<!-- Generated from ocs/config.py by `" + REGENERATE + "`: edit the comments there,",
        "     not this page. tests/ocs/test_config_reference.py fails when they differ. -->",
        "",
        "One frozen configuration, from (later wins): defaults < TOML file (`--config FILE`) <",
        "`OCS_<SECTION>_<KEY>` environment variables (lists comma-separated) < command-line",
        "flags. An unknown section or key is refused with its name, in the file and in the",
        "environment alike. `examples/config.toml` holds every key with its default.",
        "",
        "```sh",
        "ocs serve --config /etc/ocs/config.toml",
        "OCS_DIAMETER_ORIGIN_HOST=ocs1.mvna.example \\",
        "    OCS_SIP_ALLOWED_SOURCES=10.0.0.0/24,192.0.2.7 ocs serve",
        "```",
        "",
    ]
    for section in all_sections:
        lines += [f"## [{section.name}]", ""]
        if section.description:
            lines += [section.description, ""]
        lines += ["| key | type | default | environment | description |", "|---|---|---|---|---|"]
        for key in section.keys:
            default = "unset" if key.default is None else f"`{toml_value(key.default)}`"
            lines.append(
                f"| `{key.name}` | {_type_name(key.type_text)} | {_cell(default)} "
                f"| `{key.env}` | {_cell(key.description)} |"
            )
        lines.append("")
    return "\n".join(lines)


def _wrap_comment(text: str, width: int = 98) -> list[str]:
    out: list[str] = []
    line = "#"
    for word in text.split():
        if len(line) + 1 + len(word) > width and line != "#":
            out.append(line)
            line = "#"
        line += " " + word
    if line != "#":
        out.append(line)
    return out


def render_example(all_sections: tuple[Section, ...]) -> str:
    lines = [
        "# mvna-ocs configuration: every key with its default.",
        "# Generated from ocs/config.py by `" + REGENERATE + "`; the reference is",
        "# docs/reference/configuration.md. Use: ocs serve --config examples/config.toml",
    ]
    for section in all_sections:
        lines += ["", f"[{section.name}]"]
        for key in section.keys:
            lines += _wrap_comment(key.description)
            if key.default is None:
                # An example value of the key's own type, commented out.
                example = "0" if key.type_text.startswith("int") else '""'
                lines.append(f"# {key.name} = {example}  (unset by default)")
            else:
                lines.append(f"{key.name} = {toml_value(key.default)}")
    return "\n".join(lines) + "\n"


def generated() -> dict[Path, str]:
    all_sections = sections()
    return {DOC_PATH: render_markdown(all_sections), EXAMPLE_PATH: render_example(all_sections)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ocs.config_reference", description=__doc__.splitlines()[0]
    )
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--write", action="store_true", help="rewrite both files")
    mode.add_argument("--check", action="store_true", help="exit 1 if either file is stale")
    args = parser.parse_args(argv)
    stale = []
    for path, text in generated().items():
        current = path.read_text(encoding="utf-8") if path.exists() else None
        if current == text:
            continue
        if args.write:
            path.write_text(text, encoding="utf-8")
            print(f"wrote {path.relative_to(ROOT)}")
        else:
            stale.append(str(path.relative_to(ROOT)))
    if stale:
        print(f"stale: {', '.join(stale)}; run {REGENERATE}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
