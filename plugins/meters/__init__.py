"""Built-in meters adapters."""
