"""Work that talks to Prefect and apprise. Importing it gives models/ Prefect's Secret reader."""

from models.secrets import read_with
from tasks.secrets import prefect_secret

read_with(prefect_secret)
