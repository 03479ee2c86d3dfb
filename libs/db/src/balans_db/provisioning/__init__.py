"""Provisioning the world: the world document (a building or a city as JSON), its
checks, export, comparison and import. Used by the api's provisioning routes and
``balans import`` / ``balans export``; see docs/provisioning.md."""
