"""Built-in adapters, one module per adapter, registered through ``kwhub`` entry points."""
