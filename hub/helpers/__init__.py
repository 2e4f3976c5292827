"""The toolkit plugins may import: Modbus bridge, safe XML parsing, transport results,
atomic file writes. Everything else in ``kwhub.hub`` is internal."""
