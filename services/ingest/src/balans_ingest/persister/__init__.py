"""The persister: UPLOADS stream -> readings tables in PostgreSQL, exactly once."""
