"""The REST API (FastAPI, ``/api/v1``): :func:`kwhub.hub.api.app.create_app` builds it from a Hub."""
