"""Deliver: the outbox that renders issued documents and sends them through transports."""
