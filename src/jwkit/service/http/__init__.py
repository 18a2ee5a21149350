"""The HTTP face of the key service: ``create_app(settings) -> FastAPI``."""
