"""The upload portal: a REST API (FastAPI) through which lab staff hand files to the landing zone.

Dagster-free except for reading run status from the instance (`status.py`). `app.create_app` builds it;
`genoflow portal` serves it.
"""
