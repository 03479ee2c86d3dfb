"""balans-billing."""
