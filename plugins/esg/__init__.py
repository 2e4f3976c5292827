"""Built-in esg adapters."""
