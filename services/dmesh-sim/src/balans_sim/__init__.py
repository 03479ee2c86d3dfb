"""balans-sim."""
