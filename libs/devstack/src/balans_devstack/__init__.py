"""balans-devstack."""
