"""Settle: runs from the store, the review gate, issuing, and the reports of a period."""
