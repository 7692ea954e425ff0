"""gunicorn entry point: `gunicorn wsgi:server` (settings from the environment)."""
from dashboard.app import create_app

app = create_app()
server = app.server
