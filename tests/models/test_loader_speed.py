"""Routing files read fast: libyaml under the hardened reader's own composer, and each content
loaded once per process, with the same data, positions and problems as the pure-Python path.

`test_loader.py` runs every loader test on both parsers; the tests here compare the two parsers
text by text, and pin down the in-process cache and the one-country read.
"""

from __future__ import annotations

import shutil

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from models import loader, safe_yaml
from models.errors import ConfigError
from models.loader import load_country, load_country_code
from models.safe_yaml import MAX_DEPTH, MAX_NODES
from tests.models.test_loader import (
    BROKEN,
    CONFIG,
    VALID,
    YAML_BITS,
    problems_of,
    write_sv,
)
from tests.models.test_loader import presets as presets

pytestmark = pytest.mark.skipif(
    "libyaml" not in safe_yaml.LOADERS, reason="PyYAML was built without libyaml here"
)


def read_by_libyaml(text: str) -> bool:
    """Whether the reader gives `text` to libyaml first (tabs and control characters: never)."""
    return not safe_yaml._PYTHON_ONLY.search(text)


@pytest.fixture(autouse=True)
def nothing_loaded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(loader, "_LOADED", loader._Loaded(size=256))


# -- libyaml and the pure-Python parser read every text alike -------------------------------------


HARDENED_TEXTS = {
    "anchor": "a: &x 1\nb: 2\n",
    "alias": "a: [1]\nb: *x\n",
    "alias bomb": (BROKEN / "alias_bomb" / "sv.yaml").read_text(),
    "deep": "a: " + "[" * (MAX_DEPTH + 2) + "]" * (MAX_DEPTH + 2) + "\n",
    "many nodes": "notes: [" + "1," * MAX_NODES + "1]\n",
    "python tag": "a: !!python/object:os.system [ls]\n",
    "local tag": "a: !secret x\n",
    "bad int tag": "a: !!int x\n",
    "duplicate key": "a: 1\nb: 2\na: 3\n",
    "key not text": "[1]: x\n",
    "yaml 1.1 words": "a: yes\nb: NO\nc: on\nd: True\ne: 2026-08-03\nf: 0o17\ng: 1_000\n",
    "unicode": "name: Fiscalía General 😀\nlist: [é, {k: Ñ}]\n",
    "empty": "# nothing\n",
    "control character": "a: 1\nb: x\x1ay\n",
    # Texts libyaml accepts and PyYAML refuses or reads otherwise: the reader gives them to PyYAML.
    "tab in a key": "c\tountry: SV\n",
    "byte-order mark inside": "a: 1\nb: x\ufeffy\n",
    "question mark in a flow mapping": "a: {b: c?, d: e}\nf: {g ? h}\n",
    "comment glued to a block header": "note: >#c\n  text\n",
}


@pytest.mark.parametrize("text", HARDENED_TEXTS.values(), ids=HARDENED_TEXTS.keys())
def test_libyaml_keeps_the_hardened_readers_limits_data_and_positions(text):
    if not read_by_libyaml(text):
        pure = safe_yaml.parse_yaml(text, file="f.yaml", loader="python")
        assert safe_yaml.parse_yaml(text, file="f.yaml").problems == pure.problems
        return
    fast = safe_yaml.parse_yaml(text, file="f.yaml", loader="libyaml")
    pure = safe_yaml.parse_yaml(text, file="f.yaml", loader="python")

    assert (fast.data, fast.positions, fast.problems) == (pure.data, pure.positions, pure.problems)


@pytest.mark.parametrize("path", sorted(BROKEN.glob("*/*.yaml")), ids=lambda p: p.parent.name)
def test_every_corpus_file_reads_the_same_on_both_paths(path):
    text = path.read_bytes().decode("utf-8", errors="replace")

    fast = safe_yaml.parse_yaml(text, file=str(path), loader="libyaml")
    pure = safe_yaml.parse_yaml(text, file=str(path), loader="python")
    chosen = safe_yaml.parse_yaml(text, file=str(path))

    # libyaml words its own syntax errors; the reader then reports PyYAML's.
    assert (chosen.data, chosen.positions, chosen.problems) == (
        pure.data,
        pure.positions,
        pure.problems,
    )
    if read_by_libyaml(text) and "YAML syntax" not in str(fast.problems[:1]):
        assert (fast.data, fast.positions, fast.problems) == (
            pure.data,
            pure.positions,
            pure.problems,
        )


@settings(max_examples=300, deadline=None)
@given(
    cut=st.integers(0, 2000),
    length=st.integers(0, 40),
    insert=st.lists(YAML_BITS, max_size=8).map("".join),
)
def test_a_mangled_text_reads_the_same_on_both_paths(cut, length, insert):
    cut = min(cut, len(VALID))
    mangled = VALID[:cut] + insert + VALID[cut + length :]

    pure = safe_yaml.parse_yaml(mangled, file="sv.yaml", loader="python")
    chosen = safe_yaml.parse_yaml(mangled, file="sv.yaml")
    fast = safe_yaml.parse_yaml(mangled, file="sv.yaml", loader="libyaml")

    assert (chosen.data, chosen.positions, chosen.problems) == (
        pure.data,
        pure.positions,
        pure.problems,
    )
    # What libyaml reads without a problem, PyYAML reads the same; what it refuses, PyYAML
    # reads again (it accepts a few texts libyaml does not, such as `{a:[b]}`).
    if read_by_libyaml(mangled) and not fast.problems:
        assert (fast.data, fast.positions, pure.problems) == (pure.data, pure.positions, [])


# -- loaded once per content ----------------------------------------------------------------------


def test_unchanged_bytes_give_the_routing_already_loaded(tmp_path, presets):
    path = write_sv(tmp_path, VALID)

    first = load_country(path, presets=presets)

    assert load_country(path, presets=presets) is first


def test_changed_bytes_are_loaded_again(tmp_path, presets):
    path = write_sv(tmp_path, VALID)
    first = load_country(path, presets=presets)

    path.write_text(VALID.replace("sla: 10bd}", "sla: 12bd}", 1))

    again = load_country(path, presets=presets)
    assert again is not first and again.version != first.version


def test_a_broken_file_is_refused_each_time_it_is_loaded(tmp_path, presets):
    path = write_sv(tmp_path, VALID.replace("timezone: America/El_Salvador", "timezone: Mars/Base"))

    first = problems_of(path, presets)

    assert problems_of(path, presets) == first


def test_one_country_is_read_from_its_own_file_alone(tmp_path):
    root = tmp_path / "config"
    shutil.copytree(CONFIG, root)
    (root / "countries" / "it.yaml").write_text("country: [broken\n")

    routing = load_country_code("sv", root)

    assert routing is not None and routing.country == "SV"
    assert load_country_code("zz", root) is None
    assert load_country_code("../countries/sv", root) is None
    with pytest.raises(ConfigError):
        load_country_code("IT", root)


def test_a_control_character_is_a_located_problem_not_a_traceback():
    doc = safe_yaml.parse_yaml("a: 1\nb: x\x1ay\n", file="f.yaml")

    assert [(p.line, p.column, p.message) for p in doc.problems] == [
        (
            2,
            5,
            "YAML syntax: unacceptable character #x001a: special characters are not allowed",
        )
    ]
