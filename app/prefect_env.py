"""Where the Prefect server is, decided before Prefect is imported (it reads settings once)."""

from __future__ import annotations

import os
import socket
from pathlib import Path
from urllib.parse import urlsplit


def var_dir() -> Path:
    return Path(os.environ.get("ROGATORY_VAR", "var"))


def api_url_file() -> Path:
    """Written by `rogatory serve` while its local server runs, for other commands to find."""
    return var_dir() / "prefect" / "api_url"


QUIET = {
    # This machine has no internet: stop Prefect from phoning home.
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "PREFECT_SERVER_UI_SHOW_PROMOTIONAL_CONTENT": "false",
    "PREFECT_CLOUD_ENABLE_ORCHESTRATION_TELEMETRY": "false",
    "DO_NOT_TRACK": "1",
}


def discover_api_url() -> str | None:
    """PREFECT_API_URL, else the local server `rogatory serve` runs; exported for Prefect."""
    for key, value in QUIET.items():
        os.environ.setdefault(key, value)
    if os.environ.get("PREFECT_API_URL"):
        return os.environ["PREFECT_API_URL"]
    path = api_url_file()
    if path.exists():
        os.environ["PREFECT_API_URL"] = path.read_text().strip()
        return os.environ["PREFECT_API_URL"]
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _listening(url: str, *, timeout: float) -> bool:
    """Whether anything accepts a connection at the URL's host and port (a plain socket)."""
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        with socket.create_connection((parts.hostname or "localhost", port), timeout=timeout):
            return True
    except (OSError, ValueError):
        return False


def server_reachable(url: str | None, timeout: float = 2.0) -> bool:
    if not url or not _listening(url, timeout=timeout):
        return False
    import httpx  # only once something listens: a decision need not wait for the import

    try:
        return httpx.get(url.rstrip("/") + "/health", timeout=timeout).status_code == 200
    except httpx.HTTPError:
        return False
