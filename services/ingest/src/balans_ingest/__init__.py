"""balans-ingest."""
