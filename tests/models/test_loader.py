"""The loader refuses every broken routing file with located problems, and accepts the shipped ones.

Each folder under `broken/` holds one file named as its country code (so the file-name check stays
quiet) with one kind of mistake; `EXPECTED` below holds the exact `file:line:col: path: message`
lines the loader must print for it, sorted as the loader sorts them.
"""

from __future__ import annotations

import argparse
import re
import shutil
import tempfile
from datetime import date
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from models import loader, safe_yaml
from models.calendar import Duration
from models.config import PresetDeadline
from models.errors import ConfigError, ConfigProblem
from models.loader import (
    country_files,
    load_all,
    load_country,
    load_presets,
)
from models.safe_yaml import MAX_BYTES, MAX_NODES

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "config"
BROKEN = Path(__file__).resolve().parent / "broken"


@pytest.fixture(autouse=True)
def at_repo_root(monkeypatch: pytest.MonkeyPatch) -> None:
    """Problems name files relative to the current directory; run from the repository root."""
    monkeypatch.chdir(REPO)


@pytest.fixture(autouse=True, params=["libyaml", "python"])
def yaml_parser(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every test runs on both paths: libyaml (where PyYAML has it) and the pure-Python parser
    it falls back to; each starts with nothing loaded, so the chosen parser really reads."""
    if request.param == "python":
        monkeypatch.setattr(safe_yaml, "LOADERS", {"python": safe_yaml.LOADERS["python"]})
    elif "libyaml" not in safe_yaml.LOADERS:
        pytest.skip("PyYAML was built without libyaml here")
    monkeypatch.setattr(loader, "_LOADED", loader._Loaded(size=256))
    return str(request.param)


@pytest.fixture(scope="module")
def presets() -> dict[str, PresetDeadline]:
    """Fixed preset deadlines, so reports listing the known ones do not move with config/."""
    return {
        "eu-eio.execution": PresetDeadline(sla=Duration(90, "d"), source="art. 12(4)"),
        "eu-eio.recognition": PresetDeadline(sla=Duration(30, "d"), source="art. 12(3)"),
    }


@pytest.fixture(scope="module")
def shipped_presets() -> dict[str, PresetDeadline]:
    return load_presets(CONFIG)


def problems_of(path: Path, presets) -> list[str]:
    """The loader's report on `path`; anything but a ConfigError fails the test."""
    with pytest.raises(ConfigError) as info:
        load_country(path, presets=presets)
    problems = info.value.problems
    assert problems, "a ConfigError must carry at least one problem"
    assert all(isinstance(p, ConfigProblem) for p in problems)
    assert str(info.value) == "\n".join(str(p) for p in problems)
    return [str(p) for p in problems]


# -- the broken corpus ----------------------------------------------------------------------------

EXPECTED: dict[str, list[str]] = {
    "alias_bomb": [
        (
            "sv.yaml:16:6: YAML anchors and aliases (&name, *name) are not allowed here: "
            "write the values out"
        ),
    ],
    "bad_sla_duration": [
        (
            "sv.yaml:13:34: routes[0].steps[0].sla: '10 weeks' is not a duration: write a "
            "whole number followed by bd (business days), d (calendar days) or h (hours), "
            "e.g. 10bd, 30d, 48h"
        ),
    ],
    "binary_garbage": [
        "sv.yaml:1:1: binary data (NUL byte at offset 8): not a YAML text file",
    ],
    "cap_years_and_cap_factor": [
        "sv.yaml:17:7: prescription.periods[0]: give cap_years or cap_factor, not both",
    ],
    "closure_not_a_real_date": [
        (
            "sv.yaml:7:7: calendar.closures[0]: '2026-02-30' is not a real date (day is out "
            "of range for month)"
        ),
    ],
    "closure_range_reversed": [
        ("sv.yaml:7:7: calendar.closures[0]: range '2026-08-06/2026-08-03' ends before it starts"),
    ],
    "counterpart_not_iso": [
        ("sv.yaml:12:12: routes[0].when.counterpart: 'UK' is not an ISO 3166 alpha-2 country code"),
    ],
    "country_not_iso": [
        "xk.yaml:2:1: country: 'XK' is not an ISO 3166 country code",
    ],
    "deeply_nested": [
        "sv.yaml:15:31: nested deeper than 24 levels: file refused",
    ],
    "duplicate_key": [
        "sv.yaml:5:1: name: duplicate key 'name' (first at line 3): remove one",
    ],
    "duplicate_offence": [
        (
            "sv.yaml:18:8: prescription.periods[1].offences: offence 'bribery' already has "
            "a period in periods[0]"
        ),
    ],
    "duplicate_step_id": [
        ("sv.yaml:14:10: routes[0].steps[1].id: step id 'draft' is already used in this route"),
    ],
    "empty_file": [
        "sv.yaml:1:1: the file is empty",
    ],
    "file_name_mismatch": [
        (
            "zz.yaml:2:1: country: country 'SV' does not match the file name zz.yaml: "
            "rename the file to sv.yaml or fix the code"
        ),
    ],
    "forward_on_last_step": [
        (
            "sv.yaml:14:60: routes[0].steps[1].decisions.forwarded: this is the last step, "
            "there is no next one: use end"
        ),
    ],
    "loop_without_exit": [
        (
            "sv.yaml:13:10: routes[0].steps[0].id: step 'draft' is in a loop without exit: "
            "no chain of decisions from it reaches end; add a decision that moves forward "
            "or ends the case"
        ),
        (
            "sv.yaml:14:10: routes[0].steps[1].id: step 'transmit' is in a loop without "
            "exit: no chain of decisions from it reaches end; add a decision that moves "
            "forward or ends the case"
        ),
    ],
    "missing_required_key": [
        "sv.yaml:2:1: timezone: missing required key 'timezone'",
    ],
    "no_sla_nor_preset": [
        (
            "sv.yaml:13:9: routes[0].steps[0]: give exactly one of `sla` (e.g. 10bd, 30d, 48h), "
            "`deadline` (a legal deadline of the route) or `preset`"
        ),
    ],
    "not_a_mapping": [
        "sv.yaml:2:1: the file must be a mapping of keys to values",
    ],
    "not_utf8": [
        "sv.yaml:1:1: not UTF-8 text (bad byte at offset 124): save as UTF-8",
    ],
    "python_tag": [
        (
            "sv.yaml:3:7: name: unsupported tag "
            "tag:yaml.org,2002:python/object/apply:os.system: remove it, only plain values "
            "are read"
        ),
        (
            "sv.yaml:4:11: timezone: unsupported tag "
            "tag:yaml.org,2002:python/name:os.system: remove it, only plain values are read"
        ),
    ],
    "returned_to_later_step": [
        (
            "sv.yaml:13:74: routes[0].steps[0].decisions.returned: a returned request goes "
            "back to the requester or to an earlier step"
        ),
    ],
    "role_without_contact": [
        (
            "sv.yaml:17:16: escalation[1].notify: no apprise tag for role 'head' "
            "(authorities without one: fgr, mjsp): add `head: <tag>` under contacts"
        ),
    ],
    "rung_at_zero_percent": [
        (
            "sv.yaml:16:6: escalation[0].at: '0%': a share must be a whole percentage from "
            "1% to 1000%"
        ),
    ],
    "several_problems": [
        (
            "sv.yaml:4:1: timezone: unknown timezone 'America/San_Salvador': use an IANA "
            "name like Europe/Rome"
        ),
        (
            "sv.yaml:6:14: calendar.closures[0]: '2026-02-30' is not a real date (day is "
            "out of range for month)"
        ),
        ("sv.yaml:15:21: routes[0].steps[0].holder: unknown authority 'fgs' (known: fgr, mjsp)"),
        (
            "sv.yaml:16:60: routes[0].steps[1].decisions.forwarded: this is the last step, "
            "there is no next one: use end"
        ),
        (
            "sv.yaml:18:16: escalation[0].notify: no apprise tag for role 'head' "
            "(authorities without one: fgr, mjsp): add `head: <tag>` under contacts"
        ),
    ],
    "sla_and_preset": [
        (
            "sv.yaml:13:9: routes[0].steps[0]: give exactly one of `sla` (e.g. 10bd, 30d, 48h), "
            "`deadline` (a legal deadline of the route) or `preset`"
        ),
    ],
    "sla_without_unit": [
        (
            "sv.yaml:13:34: routes[0].steps[0].sla: '10' is not a duration: write a whole "
            "number followed by bd (business days), d (calendar days) or h (hours), e.g. "
            "10bd, 30d, 48h"
        ),
    ],
    "tagged_value_does_not_parse": [
        (
            "sv.yaml:6:14: calendar.closures[0]: '2026-02-30' is not a valid timestamp for "
            "tag tag:yaml.org,2002:timestamp: remove the tag"
        ),
        (
            "sv.yaml:15:39: routes[0].steps[0].sla: '10bd' is not a valid int for tag "
            "tag:yaml.org,2002:int: remove the tag"
        ),
        (
            "sv.yaml:16:43: routes[0].steps[1].sla: 'five' is not a valid float for tag "
            "tag:yaml.org,2002:float: remove the tag"
        ),
    ],
    "unknown_decision": [
        (
            "sv.yaml:13:57: routes[0].steps[0].decisions.approved: 'approved' is not "
            "allowed: input should be 'forwarded', 'returned', 'refused', 'postponed', "
            "'executed' or 'partially_executed'"
        ),
    ],
    "unknown_decision_target": [
        (
            "sv.yaml:13:57: routes[0].steps[0].decisions.forwarded: unknown target "
            "'transmitt': use next, end, requester, stay or a step id (draft, transmit)"
        ),
        (
            "sv.yaml:14:10: routes[0].steps[1].id: step 'transmit' can never be reached: no "
            "decision leads to it"
        ),
    ],
    "unknown_enum_value": [
        (
            "sv.yaml:12:12: routes[0].when.kind: 'mla-ish' is not allowed: input should be "
            "'mla', 'extradition', 'asset_tracing', 'asset_freezing', 'asset_seizure', "
            "'confiscation' or 'asset_return'"
        ),
    ],
    "unknown_holder": [
        ("sv.yaml:14:24: routes[0].steps[1].holder: unknown authority 'mjps' (known: fgr, mjsp)"),
    ],
    "unknown_holidays_country": [
        (
            "sv.yaml:6:14: calendar.holidays.country: the holidays package does not know "
            "country 'XX': list its public holidays under `closures` instead"
        ),
    ],
    "unknown_holidays_subdivision": [
        (
            "sv.yaml:6:27: calendar.holidays.subdiv: SV has no subdivision 'ZZ' in the "
            "holidays package (known: AH, CA, CH, CU, LI, MO, PA, SA, SM, SO, SS, SV, UN, "
            "US)"
        ),
    ],
    "unknown_key": [
        (
            "sv.yaml:6:68: authorities.fgr.timezon: unknown key 'timezon' (allowed: name, "
            "kind, timezone, calendar, contacts)"
        ),
    ],
    "unknown_preset": [
        (
            "sv.yaml:13:34: routes[0].steps[0].preset: unknown preset deadline "
            "'eu-eio.recognise' (known: eu-eio.execution, eu-eio.recognition)"
        ),
    ],
    "unknown_timezone": [
        (
            "sv.yaml:4:1: timezone: unknown timezone 'America/San_Salvador': use an IANA "
            "name like Europe/Rome"
        ),
    ],
    "unreachable_step": [
        (
            "sv.yaml:14:10: routes[0].steps[1].id: step 'check' can never be reached: no "
            "decision leads to it"
        ),
    ],
    "weekend_all_week": [
        (
            "sv.yaml:6:3: calendar.weekend: every day is a weekend day: leave at least one "
            "working day"
        ),
    ],
    "yaml_syntax_error": [
        "sv.yaml:14:9: YAML syntax: expected ',' or '}', but got '{'",
    ],
    "yes_is_not_a_boolean": [
        ("sv.yaml:12:12: routes[0].when.coercive: 'yes' is not a boolean: write true or false"),
    ],
}


def corpus() -> dict[str, Path]:
    cases = {}
    for folder in sorted(p for p in BROKEN.iterdir() if p.is_dir()):
        files = sorted(folder.glob("*.yaml"))
        assert len(files) == 1, f"{folder} must hold exactly one .yaml file, has {files}"
        cases[folder.name] = files[0]
    return cases


def test_every_corpus_file_has_its_expected_report_and_vice_versa():
    assert sorted(corpus()) == sorted(EXPECTED)
    assert len(EXPECTED) >= 20


@pytest.mark.parametrize("case", sorted(EXPECTED))
def test_broken_file_is_refused_with_its_located_problems(case, presets):
    path = corpus()[case]
    prefix = f"tests/models/broken/{case}/"

    assert problems_of(path, presets) == [prefix + line for line in EXPECTED[case]]


def test_several_problems_in_one_file_are_all_reported_sorted_by_line(presets):
    problems = problems_of(BROKEN / "several_problems" / "sv.yaml", presets)

    lines = [int(p.split(":")[1]) for p in problems]
    assert lines == [4, 6, 15, 16, 18]
    assert [p.split(": ")[1] for p in problems] == [
        "timezone",
        "calendar.closures[0]",
        "routes[0].steps[0].holder",
        "routes[0].steps[1].decisions.forwarded",
        "escalation[0].notify",
    ]


def test_file_name_must_match_the_country_code(presets):
    path = BROKEN / "file_name_mismatch" / "zz.yaml"

    assert path.stem != "sv"
    assert problems_of(path, presets) == [
        "tests/models/broken/file_name_mismatch/zz.yaml:2:1: country: country 'SV' does not "
        "match the file name zz.yaml: rename the file to sv.yaml or fix the code"
    ]


def test_alias_bomb_is_refused_at_its_first_anchor(presets):
    text = (BROKEN / "alias_bomb" / "sv.yaml").read_text()
    assert text.count("*") > 60  # the bomb is really there: 9**9 strings once expanded

    [problem] = problems_of(BROKEN / "alias_bomb" / "sv.yaml", presets)

    assert problem.startswith("tests/models/broken/alias_bomb/sv.yaml:16:6: YAML anchors")


# -- limits that need big files, made on the fly --------------------------------------------------


def test_file_over_the_size_limit_is_refused(tmp_path, presets):
    path = write_sv(tmp_path, VALID + "#" * MAX_BYTES)
    size = path.stat().st_size

    assert problems_of(path, presets) == [
        f"{path}:1:1: file is {size} bytes, over the 524288-byte limit: refused"
    ]


def test_file_with_too_many_yaml_nodes_is_refused(tmp_path, presets):
    path = tmp_path / "sv.yaml"
    path.write_text("notes: [" + "1," * MAX_NODES + "1]\n")
    assert path.stat().st_size < MAX_BYTES
    # Nodes: the mapping, the key, the list, then items; item k is node k + 4, at column 9 + 2k.
    first_too_many = MAX_NODES + 1 - 4

    assert problems_of(path, presets) == [
        f"{path}:1:{9 + 2 * first_too_many}: more than 50000 YAML nodes: file refused"
    ]


# -- valid files, varied ---------------------------------------------------------------------------

VALID = """\
# A cut-down El Salvador file the tests below vary.
country: SV
name: El Salvador
timezone: America/El_Salvador
calendar:
  weekend: [sat, sun]
  holidays: {country: SV}
  closures:
    - 2026-08-03/2026-08-06   # Fiestas Agostinas
    - 2026-12-24/2026-12-31
authorities:
  fgr: {name: Fiscalía General de la República, kind: prosecution}
  csj: {name: Corte Suprema de Justicia, kind: judiciary}
  mjsp: {name: Ministerio de Justicia y Seguridad Pública, kind: ministry}
contacts:
  holder: sv-{authority}
  coordinator: sv-coordination
routes:
  - id: mla-outgoing
    when: {kind: [mla, asset_tracing], direction: outgoing}
    steps:
      - {id: draft, holder: fgr, sla: 10bd}
      - {id: court, holder: csj, sla: 10bd}   # para 25
      - {id: transmit, holder: mjsp, sla: 5bd}
escalation:
  - {at: 75%, notify: [holder], kind: reminder}
  - {at: 100%, notify: [holder, coordinator], kind: overdue}
"""

# The same meaning: no comments, other spacing, keys in another order, block instead of flow.
RESHUFFLED = """\
timezone:   America/El_Salvador
name: "El Salvador"
country: SV

authorities:
  mjsp: {kind: ministry, name: Ministerio de Justicia y Seguridad Pública}
  fgr:
    kind: prosecution
    name: Fiscalía General de la República
  csj: {name: Corte Suprema de Justicia,   kind: judiciary}
calendar:
  closures: [2026-08-03/2026-08-06, 2026-12-24/2026-12-31]
  holidays:
    country: SV
  weekend:
    - sat
    - sun
escalation:
  - {notify: [holder], at: 75%, kind: reminder}
  - {kind: overdue, at: 100%, notify: [holder, coordinator]}
contacts: {coordinator: sv-coordination, holder: "sv-{authority}"}
routes:
  - steps:
      - {holder: fgr, id: draft, sla: 10bd}
      - {id: court, sla: 10bd, holder: csj}
      - id: transmit
        holder: mjsp
        sla: 5bd
    id: mla-outgoing
    when: {direction: outgoing, kind: [mla, asset_tracing]}
"""


def varied(old: str, new: str) -> str:
    assert VALID.count(old) == 1, old
    return VALID.replace(old, new)


def write_sv(folder: Path, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "sv.yaml"
    path.write_text(text)
    return path


def test_the_valid_base_file_loads(tmp_path, presets):
    routing = load_country(write_sv(tmp_path, VALID), presets=presets)

    assert routing.country == "SV"
    assert [s.id for s in routing.config.route("mla-outgoing").steps] == [
        "draft",
        "court",
        "transmit",
    ]


def test_date_looking_values_stay_text_where_text_is_required(tmp_path, presets):
    text = varied("name: El Salvador", "name: 2026-08-03")
    text = text.replace("sla: 5bd}", "sla: 5bd, note: 2026-12-24}")

    routing = load_country(write_sv(tmp_path, text), presets=presets)

    assert routing.config.name == "2026-08-03"
    assert routing.config.route("mla-outgoing").steps[2].note == "2026-12-24"
    assert routing.config.calendar.closures == ["2026-08-03/2026-08-06", "2026-12-24/2026-12-31"]


def test_no_is_norway_and_yes_is_text_not_booleans(tmp_path, presets):
    text = varied("direction: outgoing}", "direction: outgoing, counterpart: [NO, IT]}")
    text = text.replace("name: El Salvador", "name: yes")

    routing = load_country(write_sv(tmp_path, text), presets=presets)

    assert routing.config.routes[0].when.counterpart == ["NO", "IT"]
    assert routing.config.name == "yes"


def test_yes_is_refused_where_a_boolean_is_required(presets):
    [problem] = problems_of(BROKEN / "yes_is_not_a_boolean" / "sv.yaml", presets)

    assert problem.endswith("routes[0].when.coercive: 'yes' is not a boolean: write true or false")


# -- the content hash -----------------------------------------------------------------------------


def test_version_ignores_comments_whitespace_and_key_order(tmp_path, presets):
    original = load_country(write_sv(tmp_path / "a", VALID), presets=presets)

    reshuffled = load_country(write_sv(tmp_path / "b", RESHUFFLED), presets=presets)

    assert reshuffled.text != original.text
    assert reshuffled.version == original.version


def test_version_changes_when_an_sla_changes(tmp_path, presets):
    original = load_country(write_sv(tmp_path / "a", VALID), presets=presets)
    text = varied("{id: court, holder: csj, sla: 10bd}", "{id: court, holder: csj, sla: 11bd}")

    changed = load_country(write_sv(tmp_path / "b", text), presets=presets)

    assert changed.config.route("mla-outgoing").steps[1].sla == Duration(11, "bd")
    assert changed.version != original.version


def test_version_changes_when_a_used_preset_deadline_changes(tmp_path, presets):
    text = varied(
        "{id: court, holder: csj, sla: 10bd}",
        "{id: court, holder: csj, preset: eu-eio.recognition}",
    )
    path = write_sv(tmp_path, text)
    recognition = presets["eu-eio.recognition"]
    slower = {
        **presets,
        "eu-eio.recognition": recognition.model_copy(update={"sla": Duration(31, "d")}),
    }

    assert load_country(path, presets=presets).version != load_country(path, presets=slower).version


# -- the shipped configuration --------------------------------------------------------------------


@pytest.mark.parametrize("path", country_files(CONFIG), ids=lambda p: p.name)
def test_shipped_country_file_validates(path, shipped_presets):
    routing = load_country(path, presets=shipped_presets)

    assert routing.country.lower() == path.stem
    assert re.fullmatch(r"[0-9a-f]{16}", routing.version)


def test_shipped_presets_validate(shipped_presets):
    assert shipped_presets["eu-eio.recognition"].sla == Duration(30, "d")
    assert shipped_presets["eu-freezing.urgent-recognition"].sla == Duration(48, "h")


def test_load_all_reports_the_problems_of_every_file_at_once(tmp_path):
    shutil.copytree(CONFIG / "presets", tmp_path / "presets")
    (tmp_path / "countries").mkdir()
    shutil.copy(BROKEN / "unknown_holder" / "sv.yaml", tmp_path / "countries" / "sv.yaml")
    shutil.copy(BROKEN / "unknown_timezone" / "sv.yaml", tmp_path / "countries" / "zz.yaml")

    with pytest.raises(ConfigError) as info:
        load_all(tmp_path)

    assert [(p.file.rsplit("/", 1)[1], p.line, p.path) for p in info.value.problems] == [
        ("sv.yaml", 14, "routes[0].steps[1].holder"),
        ("zz.yaml", 2, "country"),
        ("zz.yaml", 4, "timezone"),
    ]


# -- no input makes the loader crash --------------------------------------------------------------

YAML_BITS = st.sampled_from(
    [
        "{",
        "}",
        "[",
        "]",
        ": ",
        "- ",
        "\n",
        "  ",
        "#",
        "&a ",
        "*a",
        "!!",
        "'",
        '"',
        ",",
        "?",
        "|",
        "null",
        "!!int ",
        "!!float ",
        "!!timestamp ",
        "~",
        "10bd",
        "yes",
        "NO",
        "2026-02-30",
        "x" * 3,
        "\t",
        "\\",
        "%YAML 1.1\n",
        "---\n",
    ]
)


@settings(
    max_examples=300,
    deadline=None,
    # The autouse chdir fixture runs once per test, which is all this test needs.
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    cut=st.integers(0, 2000),
    length=st.integers(0, 40),
    insert=st.lists(YAML_BITS, max_size=8).map("".join),
)
def test_a_mangled_file_gives_problems_never_a_traceback(presets, cut, length, insert):
    cut = min(cut, len(VALID))
    mangled = VALID[:cut] + insert + VALID[cut + length :]
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "sv.yaml"
        path.write_text(mangled)
        try:
            load_country(path, presets=presets)
        except ConfigError as exc:
            assert exc.problems
            assert all(p.line >= 1 and p.column >= 1 for p in exc.problems)


def test_an_sla_no_calendar_can_count_is_refused_at_its_line(tmp_path: Path, presets) -> None:
    """`999999d` once validated, then broke every registration on its route."""
    path = write_sv(tmp_path, VALID.replace("sla: 10bd}", "sla: 999999d}", 1))
    (problem,) = problems_of(path, presets)
    assert problem.endswith(
        "sv.yaml:22:34: routes[0].steps[0].sla: '999999d': at most 1830d (about 5 years); a "
        "longer deadline is no deadline, and could not be counted on the calendar"
    )


# -- warnings: valid files that will go wrong -----------------------------------------------------

YEARLY = """\
  closures:
    - 2025-04-14/2025-04-20   # Holy Week
    - 2025-08-01/2025-08-06
    - 2026-03-30/2026-04-05
    - 2026-08-01/2026-08-06
"""
PRESCRIPTION = """\
prescription:
  periods:
    - {offences: [bribery, embezzlement], years: 10}
  none:
    - {offences: [trading_in_influence], reason: "does not prescribe"}
"""


def yearly_sv(tmp_path: Path, presets) -> loader.Routing:
    dated = VALID[VALID.index("  closures:") : VALID.index("authorities:")]
    return load_country(write_sv(tmp_path, varied(dated, YEARLY)), presets=presets)


def test_yearly_dated_closures_that_stop_within_18_months_warn_at_the_last_one(tmp_path, presets):
    routing = yearly_sv(tmp_path, presets)

    (warning,) = loader.config_warnings(routing, today=date(2025, 3, 1))

    assert (warning.line, warning.column, warning.path) == (12, 7, "calendar.closures[3]")
    assert warning.message.startswith(
        "the dated closures run out on 2026-08-06 ('2026-08-01/2026-08-06' is the last), before "
        "2026-09-01 (18 months from today): deadlines after that skip no closure."
    )
    # The suggestion repeats the list: the same month-days, and Holy Week around Easter.
    assert '{every_year: "08-01..08-06", reason: ...}' in warning.message
    assert '{easter: "-6..0", reason: ...}' in warning.message


def test_dated_closures_that_reach_18_months_ahead_do_not_warn(tmp_path, presets):
    routing = yearly_sv(tmp_path, presets)

    assert loader.config_warnings(routing, today=date(2025, 2, 5)) == []


def test_this_years_closures_warn_and_old_one_off_ones_do_not(tmp_path, presets):
    routing = load_country(write_sv(tmp_path, VALID), presets=presets)

    (warning,) = loader.config_warnings(routing, today=date(2026, 12, 1))
    assert warning.path == "calendar.closures[1]"
    assert loader.config_warnings(routing, today=date(2028, 6, 1)) == []


def test_offences_with_no_period_and_not_listed_as_having_none_warn(tmp_path, presets):
    routing = load_country(write_sv(tmp_path, VALID + PRESCRIPTION), presets=presets)

    (warning,) = loader.config_warnings(routing, today=date(2029, 1, 1))

    assert warning.path == "prescription.periods"
    assert warning.message.startswith(
        "no prescription period for abuse_of_functions, illicit_enrichment, money_laundering, "
        "concealment, obstruction: their cases get no prescription date."
    )


def test_an_offence_with_a_period_cannot_also_be_listed_as_having_none(tmp_path, presets):
    text = VALID + PRESCRIPTION.replace("[trading_in_influence]", "[bribery]")

    (problem,) = problems_of(write_sv(tmp_path, text), presets)

    assert problem.endswith(
        "prescription.none[0].offences: offence 'bribery' has a period under `periods` and is "
        "listed here as having none: keep one"
    )


def test_validate_prints_warnings_and_exits_0(tmp_path, presets, capsys, monkeypatch):
    from app.commands import validate

    monkeypatch.setattr(loader, "load_presets", lambda root=None: presets)
    path = write_sv(tmp_path, VALID)

    assert validate(argparse.Namespace(paths=[str(path)])) == 0

    warnings = [line for line in capsys.readouterr().out.splitlines() if "sv.yaml:" in line]
    assert len(warnings) == 1 and warnings[0].startswith(
        f"warning: {path}:10:7: calendar.closures[1]: "
    )


def test_shipped_files_give_no_warning_for_18_months(shipped_presets):
    for path in country_files(CONFIG):
        routing = load_country(path, presets=shipped_presets)
        assert loader.config_warnings(routing, today=date.today()) == [], path.name
