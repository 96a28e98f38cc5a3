"""`rogatory import`: a former register brought in through the engine's own commands.

The shipped Spanish register (examples/import/registro_sv.xlsx) and the case-management export
(expedientes_sv.csv) import with their history; the dwell times the register's dates imply are
those the report shows (three cases worked by hand); a register with planted errors lists each
one, located, and writes nothing; importing again changes nothing.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from models.clock import FixedClock
from models.engine import Routings
from models.errors import ConfigError, RegisterRejected
from models.importer import import_register
from models.ledger import Event, Ledger, Request
from models.loader import load_country
from models.metrics import Filters, dwell_by_authority, load_audit
from models.queries import timeline, verify_chain
from tests.models.test_crash import check_invariants

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples" / "import"
REGISTER = EXAMPLES / "registro_sv.xlsx"
REGISTER_MAPPING = EXAMPLES / "registro_sv.mapping.yaml"
EXPORT = EXAMPLES / "expedientes_sv.csv"
EXPORT_MAPPING = EXAMPLES / "expedientes_sv.mapping.yaml"
NOW = datetime(2026, 12, 1, 15, 0, tzinfo=UTC)
ACTOR = "local:ministry"


def _generator() -> Any:
    spec = importlib.util.spec_from_file_location("make_registro", EXAMPLES / "make_registro.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def sqlite_ledger(tmp_path: Path) -> Any:
    ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.db'}", migrate=True)
    yield ledger
    ledger.dispose()


def run(ledger: Ledger, path: Path, mapping: Path, **options: Any) -> Any:
    return import_register(
        path=path,
        mapping_path=mapping,
        ledger=ledger,
        clock=FixedClock(NOW),
        actor=ACTOR,
        **options,
    )


def counts(ledger: Ledger) -> tuple[int, int]:
    with ledger.session() as session:
        cases = session.scalar(select(func.count()).select_from(Request)) or 0
        events = session.scalar(select(func.count()).select_from(Event)) or 0
    return cases, events


def test_the_sample_register_imports_with_its_history(ledger):
    report = run(ledger, REGISTER, REGISTER_MAPPING)
    assert report.problems == [] and len(report.imported) == 12
    by_number = {c.number: c for c in report.imported}
    assert by_number["FGR-AJ-2021-001"].status == "closed"
    assert by_number["FGR-AJ-2021-003"].status == "open"
    assert by_number["FGR-AJ-2021-001"].reference.startswith("SV-2021-")
    with ledger.session() as session:
        assert verify_chain(session=session) == []
        check_invariants(session)
        outcomes = dict(session.execute(select(Request.reference, Request.outcome)).all())
        payloads = [json.loads(p) for p in session.scalars(select(Event.payload))]
        intake = session.scalar(
            select(Request.intake).where(
                Request.reference == by_number["FGR-AJ-2021-002"].reference
            )
        )
    assert outcomes[by_number["FGR-AJ-2021-002"].reference] == "refused"
    assert outcomes[by_number["FGR-AJ-2021-004"].reference] == "withdrawn"
    assert outcomes[by_number["FGR-AJ-2022-002"].reference] == "partially_executed"
    # Every event carries the file's hash and the register's number; the number is on the case.
    assert all(p["import"]["sha256"] == report.sha256 for p in payloads)
    assert intake["register_number"] == "FGR-AJ-2021-002"
    assert intake["counterpart"] == "US" and intake["coercive"] is True


def test_imported_events_keep_the_register_dates_and_today_as_recorded(sqlite_ledger):
    report = run(sqlite_ledger, REGISTER, REGISTER_MAPPING)
    reference = next(c.reference for c in report.imported if c.number == "FGR-AJ-2021-001")
    with sqlite_ledger.session() as session:
        rows = session.execute(
            select(Event.kind, Event.occurred_at, Event.recorded_at)
            .join(Request, Event.request_id == Request.id)
            .where(Request.reference == reference)
            .order_by(Event.seq)
        ).all()
    assert {r.recorded_at for r in rows} == {NOW}
    # Registered on 15/03/2021, local noon in San Salvador (UTC-6).
    assert rows[0].occurred_at == datetime(2021, 3, 15, 18, 0, tzinfo=UTC)
    assert rows[-1].kind == "case_closed"
    assert rows[-1].occurred_at.date() == date(2021, 9, 30)


# Three cases worked by hand from the register's dates (calendar days per hop):
# FGR-AJ-2021-001: received 15/03, FGR 26/03, CSJ 20/04, MJSP 05/05, RREE 12/05, executed 30/09.
# FGR-AJ-2022-002: received 14/03/2022 (a bare Excel serial), FGR 25/03, CSJ 19/04, MJSP 29/04,
#   RREE 06/05, partially executed 14/11/2022.
# FGR-AJ-2024-001: received 04/03/2024, FGR 15/03, CSJ 10/04, MJSP 24/04, RREE 02/05, executed
#   20/09/2024.
BY_HAND = {
    "FGR-AJ-2021-001": [11, 25, 15, 7, 141],
    "FGR-AJ-2022-002": [11, 25, 10, 7, 192],
    "FGR-AJ-2024-001": [11, 26, 14, 8, 141],
}


def test_the_report_shows_the_dwell_the_register_dates_imply(sqlite_ledger):
    report = run(sqlite_ledger, REGISTER, REGISTER_MAPPING)
    refs = {c.number: c.reference for c in report.imported}
    routing = load_country(REPO / "config" / "countries" / "sv.yaml")
    with sqlite_ledger.session() as session:
        for number, days in BY_HAND.items():
            view = timeline(session=session, routing=routing, reference=refs[number], now=NOW)
            assert [h.calendar_days for h in view.hops] == days, number
            assert [h.holder for h in view.hops] == ["fgr", "csj", "mjsp", "rree", "abroad"]
        data = load_audit(
            session=session,
            routings=Routings({"SV": routing}),
            filters=Filters(countries=("SV",)),
            now=NOW,
        )
    rows = {r["authority"]: r for r in dwell_by_authority(data=data)}
    # The foreign state's closed hops: the three above and the refusal of FGR-AJ-2021-002
    # (22/09/2021 to 10/02/2022, 141 days), FGR-AJ-2022-003 (25/07/2022 to 12/01/2023, 171 days).
    abroad = sorted([141, 192, 141, 141, 171])
    assert rows["abroad"]["hops"] == len(abroad)
    assert rows["abroad"]["cd_median"] == abroad[2]


def test_a_register_with_planted_errors_lists_each_and_writes_nothing(sqlite_ledger, tmp_path):
    bad = tmp_path / "errores.xlsx"
    generator = _generator()
    generator.write(bad, generator.planted(generator.complete(generator.ROWS)))
    with pytest.raises(RegisterRejected) as refused:
        run(sqlite_ledger, bad, REGISTER_MAPPING)
    found = [str(p) for p in refused.value.problems]
    assert found == [
        "errores.xlsx:Registro:4:B: 'Fecha de recepción': '31/02/2021' is not a date "
        "(dd/mm/yyyy or excel)",
        "errores.xlsx:Registro:6:D: 'Tipo': unknown kind 'Asistencia judical' (the mapping "
        "knows: 'Asistencia judicial', 'Extradición', 'Rastreo de activos', 'Embargo "
        "preventivo', 'Incautación', 'Decomiso')",
        "errores.xlsx:Registro:7:E: 'País requerido': unknown counterpart 'Narnia' (the mapping "
        "knows: 'España', 'EE.UU.', 'Estados Unidos', 'Panamá', 'Guatemala', 'México')",
        "errores.xlsx:Registro:9:A: 'N.º de registro': register number FGR-AJ-2021-002 is also "
        "on row 5: one row per case in this register (neither row is imported)",
        "errores.xlsx:Registro:10:O: 'Remitido por CSJ': forwarded on 10/06/2022, before the "
        "request reached csj on 20/06/2022: a decision cannot precede its receipt",
    ]
    assert counts(sqlite_ledger) == (0, 0)


def test_skip_invalid_writes_the_good_rows_and_lists_the_others(sqlite_ledger, tmp_path):
    bad = tmp_path / "errores.xlsx"
    generator = _generator()
    generator.write(bad, generator.planted(generator.complete(generator.ROWS)))
    report = run(sqlite_ledger, bad, REGISTER_MAPPING, skip_invalid=True)
    assert len(report.problems) == 5
    assert report.skipped == [
        "FGR-AJ-2021-001",
        "FGR-AJ-2021-002",
        "FGR-AJ-2021-003",
        "FGR-AJ-2021-004",
        "FGR-AJ-2022-003",
    ]
    assert len(report.imported) == 12 - 1 - len(report.skipped)  # row 9 was a duplicate
    assert counts(sqlite_ledger)[0] == len(report.imported)
    with sqlite_ledger.session() as session:
        check_invariants(session)


def test_a_dry_run_checks_and_replays_but_writes_nothing(sqlite_ledger):
    report = run(sqlite_ledger, REGISTER, REGISTER_MAPPING, dry_run=True)
    assert len(report.imported) == 12 and not report.written
    assert counts(sqlite_ledger) == (0, 0)


def test_importing_the_same_file_again_changes_nothing_and_says_so(sqlite_ledger):
    run(sqlite_ledger, REGISTER, REGISTER_MAPPING)
    before = counts(sqlite_ledger)
    again = run(sqlite_ledger, REGISTER, REGISTER_MAPPING)
    assert again.imported == [] and again.extended == [] and len(again.unchanged) == 12
    assert counts(sqlite_ledger) == before


def test_a_register_that_grew_adds_only_the_new_events(sqlite_ledger, tmp_path):
    first = tmp_path / "expedientes.csv"
    lines = EXPORT.read_text(encoding="utf-8").splitlines(keepends=True)
    last_of_0031 = max(i for i, line in enumerate(lines) if line.startswith("DGAI-2024-0031"))
    first.write_text("".join(lines[: last_of_0031 + 1]), encoding="utf-8")
    run(sqlite_ledger, first, EXPORT_MAPPING)
    _, events_before = counts(sqlite_ledger)
    grown = tmp_path / "expedientes_grown.csv"
    grown.write_text(
        "".join(lines[: last_of_0031 + 1])
        + "DGAI-2024-0031;2024-07-22;REMISION;CSJ;;Extradición concedida;;;;;;;;;;;;\n"
        + "".join(lines[last_of_0031 + 1 :]),
        encoding="utf-8",
    )
    report = run(sqlite_ledger, grown, EXPORT_MAPPING)
    assert [(c.number, c.events) for c in report.extended] == [("DGAI-2024-0031", 1)]
    assert {c.number for c in report.imported} == {"DGAI-2025-0012"}
    assert len(report.unchanged) == 3
    with sqlite_ledger.session() as session:
        check_invariants(session)
        assert verify_chain(session=session) == []
    assert counts(sqlite_ledger)[1] > events_before


def test_a_changed_history_is_refused_case_by_case(sqlite_ledger, tmp_path):
    run(sqlite_ledger, EXPORT, EXPORT_MAPPING)
    changed = tmp_path / "expedientes.csv"
    text = EXPORT.read_text(encoding="utf-8")
    changed.write_text(text.replace("DGAI-2023-0007;2023-03-06", "DGAI-2023-0007;2023-03-07"))
    with pytest.raises(RegisterRejected) as refused:
        run(sqlite_ledger, changed, EXPORT_MAPPING)
    (problem,) = refused.value.problems
    assert str(problem).startswith("expedientes.csv:expedientes:20:B: 'fecha': register number ")
    assert "differs at event 4 (decide on 07/03/2023) from what was imported before" in str(problem)


def test_a_refusal_without_its_ground_and_a_return_without_its_cause_are_located(
    sqlite_ledger, tmp_path
):
    missing = tmp_path / "expedientes.csv"
    text = EXPORT.read_text(encoding="utf-8")
    missing.write_text(
        text.replace("DENEGACION;CSJ;DOBLE_INCRIMINACION;", "DENEGACION;CSJ;;").replace(
            "DEVOLUCION;FGR;SOLICITUD_INCOMPLETA;", "DEVOLUCION;FGR;;"
        ),
        encoding="utf-8",
    )
    with pytest.raises(RegisterRejected) as refused:
        run(sqlite_ledger, missing, EXPORT_MAPPING)
    found = [str(p) for p in refused.value.problems]
    assert any(
        p.startswith("expedientes.csv:expedientes:13:E: 'motivo': a return needs its cause")
        for p in found
    ), found
    assert any(
        p.startswith("expedientes.csv:expedientes:20:E: 'motivo': a refusal needs its ground")
        for p in found
    ), found
    assert counts(sqlite_ledger) == (0, 0)


def test_a_decision_or_receipt_by_an_authority_that_does_not_hold_the_case_is_located(
    sqlite_ledger, tmp_path
):
    moved = tmp_path / "expedientes.csv"
    text = EXPORT.read_text(encoding="utf-8")
    moved.write_text(
        text.replace(
            "DGAI-2022-0101;2022-02-10;REMISION;RREE;;;;;;;;;;;;;;\n",
            "DGAI-2022-0101;2022-02-10;REMISION;RREE;;;;;;;;;;;;;;\n"
            "DGAI-2022-0101;2022-02-11;RECEPCION;CSJ;;;;;;;;;;;;;;\n",
        ).replace(
            "DGAI-2022-0102;2022-07-11;DEVOLUCION;FGR;", "DGAI-2022-0102;2022-07-11;DEVOLUCION;CSJ;"
        ),
        encoding="utf-8",
    )
    with pytest.raises(RegisterRejected) as refused:
        run(sqlite_ledger, moved, EXPORT_MAPPING)
    assert [str(p) for p in refused.value.problems] == [
        "expedientes.csv:expedientes:4:B: 'fecha': received by csj on 11/02/2022, but the case "
        "is with mjsp (step 'transmit') at this point of its history",
        "expedientes.csv:expedientes:14:B: 'fecha': returned by csj, but the case is with fgr "
        "(step 'execution') at this point of its history",
    ]
    assert counts(sqlite_ledger) == (0, 0)


def test_the_case_management_export_imports_returns_and_resubmissions(sqlite_ledger):
    report = run(sqlite_ledger, EXPORT, EXPORT_MAPPING)
    refs = {c.number: c for c in report.imported}
    assert refs["DGAI-2022-0102"].status == "closed" and refs["DGAI-2022-0102"].events == 9
    assert refs["DGAI-2025-0012"].status == "open"
    routing = load_country(REPO / "config" / "countries" / "sv.yaml")
    with sqlite_ledger.session() as session:
        view = timeline(
            session=session, routing=routing, reference=refs["DGAI-2022-0102"].reference, now=NOW
        )
        kinds = session.scalars(
            select(Event.kind)
            .join(Request, Event.request_id == Request.id)
            .where(Request.reference == refs["DGAI-2022-0102"].reference)
        ).all()
    assert [h.outcome for h in view.hops][4:] == ["returned", "partially_executed", "executed"]
    assert "resubmitted" in kinds


def test_an_open_imported_case_gets_its_hop_due_date_and_rungs(sqlite_ledger):
    report = run(sqlite_ledger, EXPORT, EXPORT_MAPPING)
    open_case = next(c for c in report.imported if c.number == "DGAI-2025-0012")
    with sqlite_ledger.session() as session:
        request = session.scalars(
            select(Request).where(Request.reference == open_case.reference)
        ).one()
        from models.ledger import Step

        hop = session.scalars(
            select(Step).where(Step.request_id == request.id, Step.hop == request.current_hop)
        ).one()
    assert (hop.route_step, hop.holder) == ("court", "csj")
    assert hop.opened_at.date() == date(2025, 6, 16)
    assert hop.due_at > hop.opened_at and hop.rungs and hop.next_rung_at is not None
    assert request.prescription_date is not None


def test_a_column_the_mapping_names_but_the_file_lacks_is_located_in_the_mapping(
    sqlite_ledger, tmp_path
):
    mapping = tmp_path / "m.yaml"
    text = REGISTER_MAPPING.read_text(encoding="utf-8")
    mapping.write_text(text.replace("column: Unidad fiscal", "column: Unidad"), encoding="utf-8")
    with pytest.raises(ConfigError) as refused:
        run(sqlite_ledger, REGISTER, mapping)
    (problem,) = refused.value.problems
    line = next(n for n, t in enumerate(text.splitlines(), 1) if "Unidad fiscal" in t)
    assert (problem.file, problem.line) == (str(mapping), line)
    assert "no column 'Unidad' in row 3 of registro_sv.xlsx:Registro" in problem.message


def test_a_mapping_with_unknown_codes_is_refused_line_by_line(sqlite_ledger, tmp_path):
    mapping = tmp_path / "m.yaml"
    text = REGISTER_MAPPING.read_text(encoding="utf-8")
    text = text.replace("Cohecho: bribery", "Cohecho: briberry").replace(
        "{holder: mjsp,", "{holder: minjus,"
    )
    mapping.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as refused:
        run(sqlite_ledger, REGISTER, mapping)
    messages = [f"{p.line}: {p.message}" for p in refused.value.problems]
    assert any("'minjus'" in m and "no authority" in m for m in messages), messages
    assert any("'briberry' is not one of" in m for m in messages), messages


def test_excel_dates_text_dates_and_serial_numbers_read_the_same(sqlite_ledger, tmp_path):
    generator = _generator()
    rows = generator.complete(generator.ROWS)[:1]
    as_text, as_date, as_serial = ([*rows[0]] for _ in range(3))
    as_date[1] = datetime(2021, 3, 15)
    as_serial[1] = generator.serial(date(2021, 3, 15))
    as_date[0], as_serial[0] = "N-2", "N-3"
    path = tmp_path / "r.xlsx"
    generator.write(path, [as_text, as_date, as_serial])
    report = run(sqlite_ledger, path, REGISTER_MAPPING)
    with sqlite_ledger.session() as session:
        registered = session.scalars(select(Request.registered_at)).all()
    assert len(report.imported) == 3 and len(set(registered)) == 1


def test_the_cli_imports_and_a_second_run_says_nothing_changed(tmp_path, monkeypatch, capsys):
    from app.cli import main

    monkeypatch.setenv("ROGATORY_VAR", str(tmp_path))
    monkeypatch.setenv("ROGATORY_CLOCK", "")
    monkeypatch.delenv("ROGATORY_API_URL", raising=False)
    monkeypatch.setenv("PREFECT_API_URL", "http://127.0.0.1:9/api")  # nothing answers
    Ledger(migrate=True).dispose()
    local = tmp_path / "registro.xlsx"
    shutil.copy(REGISTER, local)
    args = ["import", str(local), "--mapping", str(REGISTER_MAPPING)]
    assert main(args) == 0
    out = capsys.readouterr()
    assert "12 new case(s) imported" in out.out
    assert "flow runs from the watcher's reconciliation" in out.err
    assert main(args) == 0
    assert "12 already imported, unchanged" in capsys.readouterr().out


def test_imported_events_are_not_counted_as_entered_late(sqlite_ledger):
    from models.metrics import late_entries

    run(sqlite_ledger, REGISTER, REGISTER_MAPPING)
    routing = load_country(REPO / "config" / "countries" / "sv.yaml")
    with sqlite_ledger.session() as session:
        data = load_audit(
            session=session,
            routings=Routings({"SV": routing}),
            filters=Filters(countries=("SV",)),
            now=NOW,
        )
    assert data.late.lag_s.size == 0
    assert all(row["late_entries"] == 0 for row in late_entries(data=data))


def test_the_open_imported_cases_get_their_flow_runs_when_a_server_answers(
    tmp_path, monkeypatch, capsys
):
    import app.prefect_env
    import tasks.orchestration
    from app.cli import main

    monkeypatch.setenv("ROGATORY_VAR", str(tmp_path))
    monkeypatch.setenv("ROGATORY_CLOCK", "")
    monkeypatch.delenv("ROGATORY_API_URL", raising=False)
    Ledger(migrate=True).dispose()
    started: list[str] = []
    monkeypatch.setattr(app.prefect_env, "server_reachable", lambda url: True)
    monkeypatch.setattr(
        tasks.orchestration, "start_case_flow", lambda ledger, reference: started.append(reference)
    )
    assert main(["import", str(EXPORT), "--mapping", str(EXPORT_MAPPING), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    opened = [c["reference"] for c in report["imported"] if c["status"] != "closed"]
    assert sorted(started) == sorted(opened) and len(opened) == 2


def test_the_import_runs_only_on_the_servers_own_command_line(monkeypatch, capsys):
    from app.cli import main

    monkeypatch.setenv("ROGATORY_API_URL", "https://rogatory.example.org")
    assert main(["import", str(REGISTER), "--mapping", str(REGISTER_MAPPING)]) == 1
    assert "runs on the server's own command line" in capsys.readouterr().err
