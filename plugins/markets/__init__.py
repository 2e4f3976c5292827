"""Built-in markets adapters."""
