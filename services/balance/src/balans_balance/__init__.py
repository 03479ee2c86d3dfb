"""balans-balance."""
