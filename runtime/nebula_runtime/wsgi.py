"""`gunicorn nebula_runtime.wsgi:app`: the app, configured from the environment and `.env`."""

from nebula_runtime.app import create_app

app = create_app()
