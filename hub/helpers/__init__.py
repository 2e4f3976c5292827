"""Documented helpers that plugins may import (the hub's toolkit for adapter authors).

* :mod:`kwhub.hub.helpers.safe_xml`: parse untrusted XML with entities, DTDs and network off.
* :mod:`kwhub.hub.helpers.loopback`: a small HTTP server on 127.0.0.1 for local counterpart
  servers (e.g. an ISO simulator an adapter ships for its tests and demos).
"""
