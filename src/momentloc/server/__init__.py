"""The demo server (FastAPI app + one static page); see :func:`momentloc.server.app.create_app`."""
