"""Entry point for ``python -m ghga_sandbox``."""

from ghga_sandbox.cli import run

if __name__ == "__main__":
    run()
