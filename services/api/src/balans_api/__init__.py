"""balans-api."""
