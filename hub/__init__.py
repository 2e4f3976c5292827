"""kwhub hub: configuration, plugin loading, persistence, services and the CLI."""
