"""Reports: narratives and self-contained HTML pages. No Dagster imports."""
