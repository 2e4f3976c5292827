"""The scheduler: one owner runs the configured jobs (see :mod:`kwhub.hub.scheduler.runner`)."""
