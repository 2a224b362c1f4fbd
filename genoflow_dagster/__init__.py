"""GenoFlow: clinical sequencing files from object storage to signed-off reports, on Dagster."""

__version__ = "0.1.0"
