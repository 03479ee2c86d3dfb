"""balans-allocation."""
