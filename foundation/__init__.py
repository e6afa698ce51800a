"""The ground floor of churnstream: what every component and command stands on, importing nothing
above it (settings, errors, the catalog, PII pseudonyms, versions, artifacts, topics, service
checks, the local stack)."""

from pathlib import Path

# Top-level folders (avro_schemas/, sql/, kibana/, versions.toml) are read relative to this.
PROJECT_ROOT = Path(__file__).resolve().parent.parent


class UserError(Exception):
    """A problem the user can fix: printed as one sentence, exit code 2, no traceback."""
