"""The web trace viewer of ``prefactor serve``: pages over the store, and signing in to them.

Needs the ``server`` extra (FastAPI, Jinja2). Every asset it uses is a file of
this package: the viewer works with no network beyond the server.
"""

from prefactor.server._viewer.gate import is_viewer_path
from prefactor.server._viewer.routes import add_viewer
from prefactor.server._viewer.session import SignIn

__all__ = ["SignIn", "add_viewer", "is_viewer_path"]
