"""The toolkit plugins may import (everything else in ``kwhub.hub`` is internal).

* :mod:`kwhub.hub.helpers.safe_xml`: parse untrusted XML with entities, DTDs and network off.
* :mod:`kwhub.hub.helpers.modbus`: Modbus TCP connections, register maps and point decoding.
* :mod:`kwhub.hub.helpers.transports`: retry settings, transport results, safe file names.
* :mod:`kwhub.hub.helpers.webhook_signature`: sign and verify webhook requests.
* :mod:`kwhub.hub.helpers.loopback`: a small HTTP server on 127.0.0.1 for local counterpart
  servers (e.g. an ISO simulator an adapter ships for its tests and demos).
"""
