"""Ingest: meter files and telemetry into the store, then validation (VEE)."""
