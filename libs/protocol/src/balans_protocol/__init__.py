"""balans-protocol."""
