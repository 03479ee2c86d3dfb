"""Three languages for residents: catalogs, locale choice, formatting, the catalog check."""
