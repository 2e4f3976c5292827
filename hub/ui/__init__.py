"""The web dashboard under ``/ui``: server-rendered pages over the API's own functions.

:func:`kwhub.hub.ui.mount.install` adds it to the API application. Pages sign in with an
API key into a session cookie and see exactly what that key sees through the API.
"""
