"""balans-db."""
