"""Every string a page shows is in both catalogues: a string added to a template or to the page
code without its Spanish fails here, naming it."""

from __future__ import annotations

import pytest

from app.web import i18n


@pytest.mark.parametrize("lang", sorted(i18n.LANGUAGES))
def test_every_string_in_use_is_in_the_catalogue(lang: str) -> None:
    assert i18n.missing(lang) == [], f"add these to app/web/messages/{lang}.yaml"


def test_spanish_translates_rather_than_copies() -> None:
    spanish = i18n.catalogue("es")
    latin = {"ne bis in idem", "de minimis"}
    copied = [k for k, v in spanish.items() if v == k and len(k.split()) > 2 and k not in latin]
    assert not copied, f"left in English in es.yaml: {copied}"
    assert all(v.strip() for v in spanish.values())


def test_the_language_follows_the_switch_then_the_browser() -> None:
    assert i18n.negotiate("es", "en-GB,en;q=0.9") == "es"
    assert i18n.negotiate(None, "es-SV,es;q=0.9,en;q=0.8") == "es"
    assert i18n.negotiate("xx", "de-DE") == "en"
