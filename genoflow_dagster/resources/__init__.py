"""Dagster resources: storage, reference data, AI providers, notifier, compute."""
