"""The fleet collector: business and infrastructure gauges that belong to no one service.

Silent concentrators, modules with a low battery, the share of estimated hourly values and
how full the JetStream streams are: each is a question about the whole fleet's data, so a
small service (``python -m balans_fleet``, ``fleet`` under ``balans run``) asks
PostgreSQL and JetStream every ``BALANS_FLEET_REFRESH_SECONDS`` and exports the answers
as ``balans_fleet_*`` gauges for Prometheus.
"""
