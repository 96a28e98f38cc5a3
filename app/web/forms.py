"""Forms built from the typed commands: one field per model field, read back into the model.

A field added to a command in `models/commands.py` appears in its form without touching a
template; the page may only narrow the choices (the outcomes a hop allows, the authorities of
the country). Empty inputs are left out, so the model's defaults apply.
"""

from __future__ import annotations

import types
import typing
from dataclasses import dataclass, field
from datetime import date, datetime
from enum import Enum
from typing import Any

from pydantic import ValidationError
from pydantic.fields import FieldInfo

from models.commands import Command
from models.errors import CommandRejected

HIDDEN = ("reference", "seq", "hop", "idempotency_key")
"""Fields the page fills in itself: the case, the sequence the clerk saw, the open hop."""


@dataclass(frozen=True)
class Input:
    name: str
    label: str
    widget: str
    """select, yesno, date, when, textarea, text or number."""
    required: bool
    help: str = ""
    choices: list[tuple[str, str]] = field(default_factory=list)


def _parts(annotation: Any) -> list[Any]:
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _parts(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        return [p for a in typing.get_args(annotation) for p in _parts(a)]
    return [annotation]


def _widget(name: str, info: FieldInfo) -> tuple[str, list[Any]]:
    parts = [p for p in _parts(info.annotation) if p is not type(None)]
    enums = [p for p in parts if isinstance(p, type) and issubclass(p, Enum)]
    if enums:
        return "select", [m.value for m in enums[0]]
    if datetime in parts:
        return "when", []
    if date in parts:
        return "date", []
    if bool in parts:
        return "yesno", []
    if int in parts:
        return "number", []
    if name in ("note", "reason"):
        return "textarea", []
    return "text", []


def inputs(
    command: type[Command],
    translate: typing.Callable[[str], str],
    *,
    choices: dict[str, list[str]] | None = None,
    labels: dict[str, str] | None = None,
) -> list[Input]:
    """The visible inputs of `command`'s form; `choices` narrows a field's options."""
    found: list[Input] = []
    for name, info in command.model_fields.items():
        if name in HIDDEN:
            continue
        widget, options = _widget(name, info)
        if choices and name in choices:
            widget, options = "select", choices[name]
        label = (labels or {}).get(name) or name.replace("_", " ").capitalize()
        found.append(
            Input(
                name=name,
                label=translate(label),
                widget=widget,
                required=info.is_required(),
                help=translate(info.description) if info.description else "",
                choices=[(str(o), translate(str(o).replace("_", " "))) for o in options],
            )
        )
    return found


def read(command: type[Command], form: dict[str, Any], **fixed: Any) -> Command:
    """The command a posted form describes, or `CommandRejected` naming each wrong field."""
    data: dict[str, Any] = {}
    for name, info in command.model_fields.items():
        value = form.get(name)
        if isinstance(value, str):
            value = value.strip()
        if value in (None, ""):
            continue
        if _widget(name, info)[0] == "yesno":
            value = {"yes": True, "no": False}.get(str(value), value)
        data[name] = value
    data.update({k: v for k, v in fixed.items() if v is not None})
    try:
        return command.model_validate(data)
    except ValidationError as exc:
        reasons = [
            f"{'.'.join(str(p) for p in e['loc']) or 'form'}: {e['msg']}" for e in exc.errors()
        ]
        raise CommandRejected("; ".join(reasons), reasons=reasons) from None
