"""The hub's market room: storing the bid-to-bill chain and running it.

* :mod:`kwhub.hub.markets.store`: submissions, awards, prices (every version), statements and
  shadow runs in the database, awards and prices as day arrays;
* :mod:`kwhub.hub.markets.forecast`: the day's forecast from the configuration and the store,
  and the bids the optimizer builds from it;
* :mod:`kwhub.hub.markets.service`: plain functions taking a database and the configuration
  (submit, poll, fetch a day, shadow-settle and compare, market revenue, explain), so
  the CLI, the demo and later a scheduler job or an API route call the same code;
* :mod:`kwhub.hub.markets.demo_day`: the demo's market day on the local ERCOT.
"""
