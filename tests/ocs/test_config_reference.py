"""The configuration reference and examples/config.toml are generated from ocs/config.py and
checked here, so neither can drift from the code; every key the documentation names must be
one the configuration loader accepts."""

from __future__ import annotations

import re
from pathlib import Path

import msgspec
import pytest

from ocs.config import SECTIONS, Config, ConfigError, load_config
from ocs.config_reference import (
    DOC_PATH,
    EXAMPLE_PATH,
    REGENERATE,
    ROOT,
    generated,
    main,
    sections,
    toml_value,
)

DOC_FILES = [*sorted((ROOT / "docs").rglob("*.md")), ROOT / "README.md"]

# Backticked names ending like a config key that are not config keys: the SIP call API's JSON
# fields (docs/integration/sip.md).
NOT_CONFIG_KEYS = frozenset({"used_s", "duration_s", "charged_s", "max_duration_s", "leakage_s"})
# Look like a section and key but are not: Lua's `redis.call`, and the Kamailio example's
# pre-processor defines OCS_SIP_URI, OCS_HTTP_URL, OCS_HTTP_TIMEOUT (docs/integration/kamailio.md).
NOT_CONFIG_PAIRS = frozenset(
    {("redis", "call"), ("sip", "uri"), ("http", "url"), ("http", "timeout")}
)

# `[section] key` or [section] `key`: a section in prose ("[diameter] has") is not a mention.
QUALIFIED = re.compile(r"`\[([a-z]+)\] ?([a-z][a-z0-9_]*)`|\[([a-z]+)\] ?`([a-z][a-z0-9_]*)`")
DOTTED = re.compile(r"`([a-z]+)\.([a-z][a-z0-9_]*)`")
ENV = re.compile(r"\bOCS_([A-Z]+)_([A-Z][A-Z0-9_]*)\b")
BARE = re.compile(r"`([a-z][a-z0-9_]*_(?:s|ms|max|percent))`")
TOML_BLOCK = re.compile(r"^```toml\n(.*?)^```", re.S | re.M)


def _all_keys() -> set[str]:
    return {key.name for section in sections() for key in section.keys}


def _other_vocabulary() -> set[str]:
    """Backticked names the docs may use that are not config keys: catalog fields and the
    fields of the records the product writes."""
    from balance.records import Bucket, LedgerRecord, RecordContext
    from tariffs import loader
    from usage.row import UsageRow

    names: set[str] = set()
    for value in vars(loader).values():
        if isinstance(value, frozenset) and all(isinstance(v, str) for v in value):
            names |= value
    for struct in (Bucket, LedgerRecord, RecordContext, UsageRow):
        names |= set(struct.__struct_fields__)
    names |= _json_keys(ROOT / "benchmarks" / "results")
    return names


def _json_keys(folder: Path) -> set[str]:
    """Every key of the published benchmark results (the docs quote their fields)."""
    import json

    keys: set[str] = set()

    def walk(node: object) -> None:
        if isinstance(node, dict):
            keys.update(k for k in node if isinstance(k, str))
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    for path in folder.glob("*.json"):
        walk(json.loads(path.read_text(encoding="utf-8")))
    return keys


def _accepted(section: str, key: str, tmp_path: Path) -> bool:
    """Whether ``[section]`` has ``key`` and takes a value of its own type (a key that is only
    valid together with others, like the TLS files, still counts as accepted)."""
    if section not in SECTIONS or key not in SECTIONS[section].__struct_fields__:
        return False
    default = getattr(getattr(Config(), section), key)
    annotation = str(SECTIONS[section].__annotations__.get(key, ""))
    unset_value = "3869" if annotation.startswith("int") else '"x"'
    value = unset_value if default is None else toml_value(default)
    path = tmp_path / f"{section}.{key}.toml"
    path.write_text(f"[{section}]\n{key} = {value}\n", encoding="utf-8")
    try:
        load_config(path, environ={})
    except ConfigError as exc:
        return f"{section}.{key} needs" in str(exc)
    return True


def mentions(text: str) -> tuple[set[tuple[str, str]], set[str]]:
    """(section, key) pairs a text names, and bare key-like names it names."""
    qualified = ((a or c, b or d) for a, b, c, d in QUALIFIED.findall(text))
    pairs = {(s, k) for s, k in qualified if s in SECTIONS}
    pairs |= {(s, k) for s, k in DOTTED.findall(text) if s in SECTIONS}
    pairs |= {(s.lower(), k.lower()) for s, k in ENV.findall(text) if s.lower() in SECTIONS}
    return pairs - NOT_CONFIG_PAIRS, set(BARE.findall(text))


def test_committed_files_are_generated() -> None:
    for path, text in generated().items():
        rel = path.relative_to(ROOT)
        assert path.read_text(encoding="utf-8") == text, f"{rel} is stale: run {REGENERATE}"
    assert main(["--check"]) == 0


def test_every_key_is_described() -> None:
    undocumented = [
        f"{s.name}.{k.name}" for s in sections() for k in s.keys if not k.description.strip()
    ]
    assert not undocumented, f"add a comment above these fields in ocs/config.py: {undocumented}"
    assert all(s.description for s in sections()), "every section Struct needs a docstring"


def test_reference_lists_every_key_once() -> None:
    page = DOC_PATH.read_text(encoding="utf-8")
    for section in sections():
        assert f"## [{section.name}]" in page
        for key in section.keys:
            assert page.count(f"| `{key.name}` |") >= 1
            assert f"`{key.env}`" in page


def test_example_config_loads_to_the_defaults() -> None:
    assert load_config(EXAMPLE_PATH, environ={}) == Config()
    text = EXAMPLE_PATH.read_text(encoding="utf-8")
    for section in sections():
        for key in section.keys:
            assert re.search(rf"^#? ?{key.name} = ", text, re.M), f"{key.name} missing"


def test_example_config_with_every_optional_key_set(tmp_path: Path) -> None:
    """The commented-out keys (no default) are real keys too: uncommented they load."""
    text = EXAMPLE_PATH.read_text(encoding="utf-8")
    text = re.sub(r'^# (\w+) = ""  \(unset by default\)$', r'\1 = "set"', text, flags=re.M)
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    config = load_config(path, environ={})
    assert config.redis.url == "set" and config.catalog.path == "set"


@pytest.mark.parametrize("doc", DOC_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_toml_examples_in_docs_load(doc: Path, tmp_path: Path) -> None:
    for index, block in enumerate(TOML_BLOCK.findall(doc.read_text(encoding="utf-8"))):
        path = tmp_path / f"block{index}.toml"
        path.write_text(block, encoding="utf-8")
        try:
            load_config(path, environ={})
        except ConfigError as exc:
            pytest.fail(f"{doc.relative_to(ROOT)}: TOML example {index + 1} refused: {exc}")


def test_every_key_the_docs_name_is_accepted(tmp_path: Path) -> None:
    known = _all_keys() | _other_vocabulary()
    problems: list[str] = []
    for doc in DOC_FILES:
        pairs, bare = mentions(doc.read_text(encoding="utf-8"))
        rel = doc.relative_to(ROOT)
        problems += [f"{rel}: [{s}] {k}" for s, k in pairs if not _accepted(s, k, tmp_path)]
        problems += [f"{rel}: `{name}`" for name in bare - known - NOT_CONFIG_KEYS]
    assert not problems, "the docs name configuration keys the loader refuses: " + "; ".join(
        sorted(problems)
    )


def test_the_mention_check_catches_the_old_errors(tmp_path: Path) -> None:
    """The keys issue 18 found in the README's limits table are caught by the check above."""
    old_table = (
        "| `watchdog_interval_s` / `watchdog_jitter_s` | 30 / 2 |\n"
        "| `dpa_timeout_s` | 5 |\n| `[diameter] drain_timeout_s` | 10 |\n"
        "set OCS_DIAMETER_INFLIGHT_REQUESTS_MAX\n"
    )
    pairs, bare = mentions(old_table)
    assert ("diameter", "drain_timeout_s") in pairs
    assert ("diameter", "inflight_requests_max") in pairs
    assert not any(_accepted(s, k, tmp_path) for s, k in pairs)
    assert {"watchdog_interval_s", "dpa_timeout_s"} <= bare - _all_keys()
    assert _accepted("diameter", "watchdog_s", tmp_path)


def test_check_mode_reports_a_stale_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import ocs.config_reference as reference

    stale = tmp_path / "configuration.md"
    stale.write_text("# old\n", encoding="utf-8")
    monkeypatch.setattr(reference, "generated", lambda: {stale: "# new\n"})
    monkeypatch.setattr(reference, "ROOT", tmp_path)
    assert reference.main(["--check"]) == 1
    assert reference.main(["--write"]) == 0
    assert stale.read_text(encoding="utf-8") == "# new\n"


def test_types_follow_the_structs() -> None:
    by_name = {(s.name, k.name): k for s in sections() for k in s.keys}
    for section, cls in SECTIONS.items():
        for field in msgspec.structs.fields(cls):
            assert (section, field.name) in by_name
