"""balans-core."""
