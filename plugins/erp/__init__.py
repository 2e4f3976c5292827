"""Built-in erp adapters."""
