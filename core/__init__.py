"""kwhub core: the pure domain, the engines and the hook specifications.

Nothing in this package talks to a database, a socket or a file format; adapters in
``plugins/`` and the wiring in ``hub/`` do that.
"""
