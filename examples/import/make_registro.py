"""Writes registro_sv.xlsx: the kind of register El Salvador's Fiscalía keeps by hand today.

One row per outgoing request, a column per authority for the day it passed the request on, the
outcome in columns of its own; dates as registers hold them: Excel dates, dd/mm/yyyy text and
the odd bare serial number. `rogatory import registro_sv.xlsx --mapping registro_sv.mapping.yaml`
brings it in. With `--errores OUT` it writes a copy with planted errors (a bad date, unknown
labels, a duplicate number, a decision before its receipt), which the import must list, each one.

    .venv/bin/python examples/import/make_registro.py [--errores OUT.xlsx]
"""

from __future__ import annotations

import argparse
from datetime import date, datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
SHEET = "Registro"
TITLE = "Registro de solicitudes de asistencia judicial internacional (activas)"
COLUMNS = [
    "N.º de registro",
    "Fecha de recepción",
    "Sentido",
    "Tipo",
    "País requerido",
    "Base legal",
    "Delito",
    "Fecha del hecho",
    "Medidas coercitivas",
    "Unidad fiscal",
    "Asunto",
    "Hechos",
    "Diligencias solicitadas",
    "Remitido por FGR",
    "Remitido por CSJ",
    "Remitido por MJSP",
    "Remitido por RREE",
    "Resultado",
    "Fecha de resultado",
    "Motivo de denegación",
    "Persona requerida",
    "Bienes",
]


def d(day: int, month: int, year: int) -> datetime:
    """A date as Excel stores it (a date-formatted cell)."""
    return datetime(year, month, day)


def serial(day: date) -> int:
    """A bare Excel serial day number, as a cell that lost its date format holds it."""
    return (day - date(1899, 12, 30)).days


# Each row: number, received, direction, kind, country, basis, offence, offence date, coercive,
# unit, subject, facts, assistance, FGR, CSJ, MJSP, RREE, outcome, outcome date, ground; the
# person sought and the assets, where the kind of request needs them, come from EXTRA.
ROWS: list[list[Any]] = [
    ["FGR-AJ-2021-001", "15/03/2021", "Activa", "Asistencia judicial", "España", "UNCAC",
     "Cohecho", "10/01/2020", "No", "Unidad Anticorrupción", "Sobornos en licitación de obras",
     "Pagos a un funcionario a través de una cuenta en Madrid", "Registros bancarios",
     "26/03/2021", "20/04/2021", "05/05/2021", "12/05/2021", "Ejecutada", "30/09/2021", None],
    ["FGR-AJ-2021-002", d(7, 6, 2021), "Activa", "Asistencia judicial", "EE.UU.",
     "Tratado bilateral", "Lavado de dinero", d(3, 2, 2019), "Sí", "Unidad de Lavado de Dinero",
     "Lavado de fondos públicos", "Transferencias a sociedades en Miami",
     "Embargo de cuentas e información bancaria", d(18, 6, 2021), d(2, 9, 2021),
     d(15, 9, 2021), d(22, 9, 2021), "Denegada", d(10, 2, 2022), "Falta de doble incriminación"],
    ["FGR-AJ-2021-003", "02/08/2021", "Activa", "Asistencia judicial", "Panamá", "UNCAC",
     "Peculado", "15/11/2020", "No", "Unidad Anticorrupción", "Desvío de fondos municipales",
     "Fondos de una alcaldía depositados en Panamá", "Información societaria",
     "13/08/2021", "30/09/2021", None, None, "En trámite", None, None],
    ["FGR-AJ-2021-004", "20/10/2021", "Activa", "Rastreo de activos", "Guatemala", "Reciprocidad",
     "Enriquecimiento ilícito", "01/06/2019", "No", "Unidad de Probidad",
     "Patrimonio no justificado de un exfuncionario", "Inmuebles adquiridos en Guatemala",
     "Registro de la propiedad", "29/10/2021", None, None, None, "Desistida", "01/06/2022",
     None],
    ["FGR-AJ-2022-001", "11/01/2022", "Activa", "Asistencia judicial", "México", "UNCAC",
     "Abuso de funciones", "05/03/2021", "No", "Unidad Anticorrupción",
     "Contratación irregular", "Un contratista con sede en México", "Declaraciones testimoniales",
     "24/01/2022", None, None, None, "Denegada", "15/03/2022", "Prescripción"],
    ["FGR-AJ-2022-002", serial(date(2022, 3, 14)), "Activa", "Asistencia judicial", "España",
     "UNCAC", "Cohecho", "20/12/2021", "No", "Unidad Anticorrupción", "Soborno en aduanas",
     "Pagos a agentes aduaneros por una empresa española", "Registros bancarios",
     "25/03/2022", "19/04/2022", "29/04/2022", "06/05/2022", "Ejecutada parcialmente",
     "14/11/2022", None],
    ["FGR-AJ-2022-003", "06/06/2022", "Activa", "Extradición", "España", "Tratado bilateral",
     "Peculado", "12/08/2020", "No", "Unidad Anticorrupción", "Extradición de un exgerente",
     "Apropiación de fondos de una autónoma", "Detención y entrega", "20/06/2022",
     "11/07/2022", "18/07/2022", "25/07/2022", "Ejecutada", "12/01/2023", None],
    ["FGR-AJ-2023-001", "16/01/2023", "Activa", "Asistencia judicial", "EE.UU.", "UNCAC",
     "Lavado de dinero", "30/06/2022", "No", "Unidad de Lavado de Dinero",
     "Remesas fraccionadas", "Remesas a cuentas en Houston", "Información bancaria",
     "27/01/2023", "21/02/2023", "03/03/2023", "10/03/2023", "En trámite", None, None],
    ["FGR-AJ-2023-002", "03/07/2023", "Activa", "Embargo preventivo", "Panamá", "UNCAC",
     "Peculado", "14/02/2023", "Sí", "Unidad de Probidad", "Fondos de un fideicomiso",
     "Saldo de un fideicomiso público trasladado a Panamá", "Congelamiento de cuentas",
     "14/07/2023", "06/09/2023", None, None, "En trámite", None, None],
    ["FGR-AJ-2024-001", "04/03/2024", "Activa", "Asistencia judicial", "Guatemala", "UNCAC",
     "Cohecho", "22/10/2023", "No", "Unidad Anticorrupción", "Soborno transfronterizo",
     "Pagos a funcionarios de aduanas de ambos países", "Declaraciones y documentos",
     "15/03/2024", "10/04/2024", "24/04/2024", "02/05/2024", "Ejecutada", "20/09/2024", None],
    ["FGR-AJ-2025-001", "10/02/2025", "Activa", "Asistencia judicial", "España", "UNCAC",
     "Lavado de dinero", "18/05/2024", "No", "Unidad de Lavado de Dinero",
     "Inversión inmobiliaria con fondos ilícitos", "Compra de inmuebles en Valencia",
     "Registros notariales", "21/02/2025", None, None, None, "En trámite", None, None],
    ["FGR-AJ-2026-001", "09/11/2026", "Activa", "Asistencia judicial", "EE.UU.", "UNCAC",
     "Cohecho", "01/07/2026", "No", "Unidad Anticorrupción", "Soborno en compras públicas",
     "Pagos desde una cuenta en Nueva York", "Registros bancarios", None, None, None, None,
     "En trámite", None, None],
]  # fmt: skip


EXTRA = {
    "FGR-AJ-2021-004": [None, "Dos inmuebles en la Ciudad de Guatemala"],
    "FGR-AJ-2022-003": ["R. A. M. (exgerente)", None],
    "FGR-AJ-2023-002": [None, "Cuentas del fideicomiso en un banco panameño"],
}


def complete(rows: list[list[Any]]) -> list[list[Any]]:
    return [[*r, *EXTRA.get(r[0], [None, None])] for r in rows]


def planted(rows: list[list[Any]]) -> list[list[Any]]:
    """The same rows with one error of each kind the import must catch and locate."""
    out = [list(r) for r in rows]
    out[0][1] = "31/02/2021"  # row 4, B: no such day
    out[2][3] = "Asistencia judical"  # row 6, D: a label the mapping does not know
    out[3][4] = "Narnia"  # row 7, E: an unknown country
    out[5][0] = "FGR-AJ-2021-002"  # row 9, A: the number of row 5 again
    out[6][14] = "10/06/2022"  # row 10, O: the Court passed it on before the FGR did (20/06)
    return out


def write(path: Path, rows: list[list[Any]]) -> None:
    from openpyxl import Workbook
    from openpyxl.styles import Font

    book = Workbook()
    sheet = book.active
    sheet.title = SHEET
    sheet.append([TITLE])
    sheet["A1"].font = Font(bold=True)
    sheet.append(["Fiscalía General de la República, Unidad de Asuntos Internacionales"])
    sheet.append(COLUMNS)
    for cell in sheet[3]:
        cell.font = Font(bold=True)
    for row in rows:
        sheet.append(row)
    for cells in sheet.iter_rows(min_row=4):
        for cell in cells:
            if isinstance(cell.value, datetime):
                cell.number_format = "dd/mm/yyyy"
    book.properties.creator = "rogatory examples"
    book.save(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--errores", type=Path, help="write the copy with planted errors here")
    args = parser.parse_args()
    if args.errores:
        write(args.errores, planted(complete(ROWS)))
        print(f"wrote {args.errores}")
        return
    write(HERE / "registro_sv.xlsx", complete(ROWS))
    print(f"wrote {HERE / 'registro_sv.xlsx'}")


if __name__ == "__main__":
    main()
