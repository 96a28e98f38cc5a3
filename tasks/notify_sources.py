"""Where apprise's configuration comes from, so that real addresses and passwords stay out of git.

In order: the Prefect Secret block named by $ROGATORY_APPRISE_SECRET (its value is apprise config
text, TEXT or YAML), else the file $ROGATORY_APPRISE_CONFIG, else the shipped
`config/apprise.conf`, which sends every tag to the offline outbox. A file inside a git checkout
that holds credentials is refused (unless $ROGATORY_APPRISE_ALLOW_IN_REPO=1, for tests): apprise's
own privacy mode, which masks passwords and tokens, tells which services carry them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import apprise

from models.contacts import apprise_config_path
from models.errors import NotificationError
from models.secrets import secret_text

SECRET_VARIABLE = "ROGATORY_APPRISE_SECRET"
ALLOW_IN_REPO_VARIABLE = "ROGATORY_APPRISE_ALLOW_IN_REPO"


@dataclass(frozen=True)
class AppriseSource:
    """One place apprise config is read from: a Secret block's name, or a file."""

    secret: str | None = None
    path: Path | None = None

    def __str__(self) -> str:
        if self.secret is not None:
            return f"the Prefect Secret block {self.secret!r}"
        return str(self.path)


def apprise_source() -> AppriseSource:
    """The Secret block, else the file $ROGATORY_APPRISE_CONFIG, else the shipped file."""
    secret = os.environ.get(SECRET_VARIABLE, "").strip()
    if secret:
        return AppriseSource(secret=secret)
    return AppriseSource(path=apprise_config_path())


def read_secret(name: str) -> str:
    """The apprise config text the Prefect Secret block `name` holds."""
    return secret_text(
        name,
        variable=SECRET_VARIABLE,
        holds="apprise config text (TEXT or YAML)",
        fix=f"Create it with `Secret(value=Path('apprise.conf').read_text()).save({name!r})` "
        f"against the Prefect server $PREFECT_API_URL names, or unset ${SECRET_VARIABLE} to use "
        "a file",
        error=NotificationError,
    )


def checkout_of(path: Path) -> Path | None:
    """The git checkout `path` lies in (the nearest folder holding `.git`), if any."""
    for folder in path.resolve().parents:
        if (folder / ".git").exists():
            return folder
    return None


def with_credentials(notifier: apprise.Apprise) -> list[str]:
    """Each service whose URL carries a secret, as apprise prints it with the secret masked."""
    found = []
    for service in notifier:
        masked = str(service.url(privacy=True))  # type: ignore[no-untyped-call]
        if masked != str(service.url(privacy=False)):  # type: ignore[no-untyped-call]
            found.append(f"{', '.join(sorted(map(str, service.tags)))}={masked}")
    return found


def load_source(source: AppriseSource) -> apprise.Apprise:
    """An apprise notifier with every service `source` configures, refused if unsafe."""
    config = apprise.AppriseConfig()
    if source.secret is not None:
        if not config.add_config(read_secret(source.secret)):
            raise NotificationError(
                f"{source} holds text apprise reads neither as TEXT nor as YAML config"
            )
    else:
        assert source.path is not None
        config.add(str(source.path))
    notifier = apprise.Apprise()
    notifier.add(config)
    if source.path is not None:
        refuse_credentials_in_checkout(notifier, source.path)
    return notifier


def refuse_credentials_in_checkout(notifier: apprise.Apprise, path: Path) -> None:
    checkout = checkout_of(path)
    if checkout is None or os.environ.get(ALLOW_IN_REPO_VARIABLE) == "1":
        return
    found = with_credentials(notifier)
    if found:
        listed = "\n  ".join(found[:5]) + ("\n  ..." if len(found) > 5 else "")
        raise NotificationError(
            f"{path} is inside the git checkout {checkout} and holds credentials:\n  {listed}\n"
            f"Move the file outside the checkout and point $ROGATORY_APPRISE_CONFIG at it, or "
            f"put its text in a Prefect Secret block named by ${SECRET_VARIABLE}; the shipped "
            "config/apprise.conf keeps only the offline outbox lines."
        )
