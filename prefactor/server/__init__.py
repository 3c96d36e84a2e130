"""The local Prefactor API: the SQLite store (stdlib only) and its HTTP layer.

``prefactor.server.store`` needs nothing beyond the core dependencies; the
HTTP layer (``app``, ``serve``) needs the ``server`` extra.
"""
