"""Allow ``python -m ghga_connector``."""

from ghga_connector.cli import run

run()
