"""Every string the pages show, in English and Spanish, from one catalogue per language.

Templates and page code write `_("English text")`; the English text is the message's key.
`messages/en.yaml` lists every key (its value is the key itself unless a wording differs),
`messages/es.yaml` translates each one; a test fails when a string in a template or in
`app/web` is missing from either. The language is the `lang` cookie, set by the switch on every
page, else the browser's Accept-Language, else English.
"""

from __future__ import annotations

import re
import typing
from collections.abc import Callable
from functools import cache
from pathlib import Path

import yaml

LANGUAGES = {"en": "English", "es": "Español"}
DEFAULT = "en"
LANG_COOKIE = "rogatory_lang"
MESSAGES = Path(__file__).parent / "messages"

Translate = Callable[[str], str]


@cache
def catalogue(lang: str) -> dict[str, str]:
    data = yaml.safe_load((MESSAGES / f"{lang}.yaml").read_text(encoding="utf-8")) or {}
    return {str(k): str(v) for k, v in data.items()}


def translator(lang: str) -> Translate:
    """`_` for `lang`: the catalogue's wording, or the key itself (English) when it has none."""
    table = catalogue(lang if lang in LANGUAGES else DEFAULT)

    def translate(text: str) -> str:
        return table.get(text, text)

    return translate


def negotiate(cookie: str | None, accept_language: str | None) -> str:
    """The page's language: the switch's cookie, else the browser's first supported one."""
    if cookie in LANGUAGES:
        return cookie
    for part in (accept_language or "").split(","):
        code = part.split(";")[0].strip().lower()[:2]
        if code in LANGUAGES:
            return code
    return DEFAULT


# -- keeping the catalogues complete ---------------------------------------------------------------

_LITERAL = re.compile(r"""\b_\(\s*(?:"((?:[^"\\]|\\.)*)"|'((?:[^'\\]|\\.)*)')\s*\)""")


def vocabulary() -> set[str]:
    """The words pages show from the domain's closed vocabularies and the commands' models:
    outcomes, grounds, causes, kinds, statuses, event kinds, command titles and field labels."""
    from app.api import _STATUS
    from app.web.forms import HIDDEN
    from models import domain
    from models.commands import COMMANDS
    from models.documents import DocumentKind
    from models.notices import Severity
    from models.prescription import EventKind

    words = {"open", "closed", "returned", "incoming", "outgoing", *COMMANDS}
    words.update(typing.get_args(Severity))
    # The ledger's event kinds, as the engine records them (`kind="decided"`, ...).
    engine = Path(__file__).parents[2] / "models" / "engine.py"
    words.update(k.replace("_", " ") for k in re.findall(r'kind="([a-z_]+)"', engine.read_text()))
    words.update({"Invalid input", "Internal error", *(title for *_, title in _STATUS)})
    for enum in (
        domain.Outcome,
        domain.RefusalGround,
        domain.DelayCause,
        domain.Kind,
        domain.Direction,
        domain.RungKind,
        DocumentKind,
        EventKind,
    ):
        words.update(str(m.value).replace("_", " ") for m in enum)
    for command in COMMANDS.values():
        words.add((command.__doc__ or command.name).strip().split("\n")[0])
        for name, info in command.model_fields.items():
            if name not in HIDDEN:
                words.add(name.replace("_", " ").capitalize())
                if info.description:
                    words.add(info.description)
    return words


def strings_in_use() -> set[str]:
    """Every `_("...")` literal in the templates and the page code, and the vocabulary."""
    found = set(vocabulary())
    sources = [*(Path(__file__).parent / "templates").glob("*.html")]
    sources += [p for p in Path(__file__).parent.glob("*.py") if p.name != "i18n.py"]
    for path in sources:
        for double, single in _LITERAL.findall(path.read_text(encoding="utf-8")):
            found.add(double or single)
    return found


def missing(lang: str) -> list[str]:
    """The strings in use that `lang`'s catalogue lacks."""
    table = catalogue(lang)
    return sorted(s for s in strings_in_use() if s not in table)


def sync_english() -> int:
    """Add the strings in use to `en.yaml` (English is the key itself); the count added."""
    table = dict(catalogue(DEFAULT))
    added = [s for s in strings_in_use() if s not in table]
    table.update({s: s for s in added})
    text = yaml.safe_dump(dict(sorted(table.items())), allow_unicode=True, width=1000)
    (MESSAGES / f"{DEFAULT}.yaml").write_text(text, encoding="utf-8")
    catalogue.cache_clear()
    return len(added)
