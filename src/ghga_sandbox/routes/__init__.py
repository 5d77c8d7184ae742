"""One FastAPI sub-application per GHGA service, plus the sandbox admin API.

Each module exposes ``create_*_app(runtime)``; :mod:`ghga_sandbox.app` mounts them under
the production prefixes (contract §1.1).
"""
