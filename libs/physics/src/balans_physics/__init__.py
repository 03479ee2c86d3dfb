"""Physics shared by the services: the one heat coefficient (IAPWS-IF97, EN 1434)."""
