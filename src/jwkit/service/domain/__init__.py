"""Plain service logic on top of the store: projects, key lifecycle, clients, tokens, audit.

Nothing here imports :mod:`jwkit.service.http`; every function takes a SQLAlchemy session
and an explicit ``now`` (integer Unix seconds) so the rules are testable without a clock.
"""
