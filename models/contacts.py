"""Which apprise tags the country files name, and which the apprise config serves.

The country files name contact tags (`sv-coordination`, `{authority}-desk`); the apprise TEXT
config (`config/apprise.conf`) maps each tag to a service. A tag without a line would leave its
alerts pending forever, so `rogatory validate` names every such tag and `rogatory notify
config` adds an offline outbox line for each, leaving the lines already there untouched.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from pathlib import Path

from models.loader import Routing, config_root
from models.notices import ADMIN_TAG, AUDITORS_TAG


def apprise_config_path() -> Path:
    """$ROGATORY_APPRISE_CONFIG, else config/apprise.conf (the offline outbox lines only).

    A Prefect Secret block ($ROGATORY_APPRISE_SECRET) comes before either: tasks/notify_sources.py.
    """
    explicit = os.environ.get("ROGATORY_APPRISE_CONFIG")
    return Path(explicit) if explicit else config_root() / "apprise.conf"


def contact_tags(routings: Iterable[Routing]) -> list[str]:
    """Every apprise tag rogatory can notify: the country files' contacts, admin, auditors."""
    tags = {ADMIN_TAG, AUDITORS_TAG}
    for routing in routings:
        config = routing.config
        for role in config.contacts:
            for authority_id in config.authorities:
                tag = config.contact(role, authority_id)
                if tag:
                    tags.add(tag)
        for authority in config.authorities.values():
            tags.update(authority.contacts.values())
    return sorted(tags)


def outbox_config(tags: Iterable[str]) -> str:
    """An apprise TEXT config sending every tag to the offline outbox.

    TEXT rather than YAML: apprise 2.0's YAML loader trips over custom notifications
    (KeyError 'password' in post_process_parse_url_results), the TEXT loader does not.
    """
    lines = [
        "# Apprise configuration (TEXT format): `tags=URL`, one line per contact tag of",
        "# config/countries/*.yaml. Offline only: every tag goes to the local outbox",
        "# (var/outbox/outbox.jsonl). Real URLs carry credentials, so they stay out of git:",
        "# the config that reaches people lives in a Prefect Secret block",
        "# ($ROGATORY_APPRISE_SECRET) or a file outside the checkout ($ROGATORY_APPRISE_CONFIG);",
        "# see README.md, Notifications. Regenerate the offline defaults with:",
        "#   rogatory notify config --print > config/apprise.conf",
    ]
    lines += [f"{tag}=outbox://local?recipient={tag}" for tag in tags]
    return "\n".join(lines) + "\n"


_TAG_LINE = re.compile(r"^\s*([^#=\s][^=]*?)\s*=\s*\S")


def served_tags(path: Path | None = None) -> set[str]:
    """The tags the apprise TEXT config at `path` gives a service (`tag1, tag2=URL` lines)."""
    path = path or apprise_config_path()
    if not path.exists():
        return set()
    return served_in(path.read_text(encoding="utf-8"))


def served_in(text: str) -> set[str]:
    """The tags an apprise TEXT config's lines give a service."""
    out: set[str] = set()
    for line in text.splitlines():
        match = _TAG_LINE.match(line)
        if match:
            out.update(t.strip() for t in re.split(r"[,\s]+", match.group(1)) if t.strip())
    return out


def add_missing_tags(tags: Iterable[str], path: Path | None = None) -> list[str]:
    """Append an offline outbox line for each tag no line serves; existing lines are untouched."""
    path = path or apprise_config_path()
    missing = sorted(set(tags) - served_tags(path))
    if missing:
        existing = path.read_text(encoding="utf-8") if path.exists() else outbox_config([])
        if existing and not existing.endswith("\n"):
            existing += "\n"
        added = "".join(f"{tag}=outbox://local?recipient={tag}\n" for tag in missing)
        path.write_text(existing + added, encoding="utf-8")
    return missing
