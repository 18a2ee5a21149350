"""The jwkit key service: projects, key rotation, JWKS/discovery publishing, token issuance.

Installed with the ``server`` extra. Start it with ``jwkit serve``; embed it with
:func:`jwkit.service.http.app.create_app`.
"""
