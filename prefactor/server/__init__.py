"""The local Prefactor API: the store (SQLite, stdlib only; or PostgreSQL) and its HTTP layer.

``prefactor.server.store`` needs nothing beyond the core dependencies for
SQLite; a ``postgresql://`` store needs the ``postgres`` extra, and the HTTP
layer (``app``, ``serve``) the ``server`` extra.
"""
