"""Every string the pages show, in English and Spanish, from one catalogue per language.

Templates and page code write `_("English text")`; the English text is the message's key.
`messages/en.yaml` lists every key (its value is the key itself unless a wording differs),
`messages/es.yaml` translates each one; a test fails when a string in a template or in
`app/web` is missing from either. The language is the `lang` cookie, set by the switch on every
page, else the browser's Accept-Language, else English.
"""

from __future__ import annotations

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
