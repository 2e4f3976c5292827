"""The ESG room of the hub: frozen carbon data, emissions inputs from the store, reports and the
certificate ledger. Every entry point is a plain function of a database and a configuration, so
the CLI, the demo and later API routes and scheduler jobs call the same code."""
