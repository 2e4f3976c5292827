"""Exports of closed periods for analytics and archive (Parquet, partitioned by campus and month)."""
