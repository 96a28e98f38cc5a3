"""The ways in: command line, API, web pages."""

import tasks  # noqa: F401  (gives models/ Prefect's Secret reader)
