"""Entry point of ``ghga-sandbox`` and ``python -m ghga_sandbox``.

The sandbox needs the ``sandbox`` extra (FastAPI, uvicorn, moto, boto3, jwcrypto,
filelock). Without it, the command says how to install it (exit code 2) instead of
failing with an import traceback.
"""

from __future__ import annotations

import sys

__all__ = ["INSTALL_HINT", "main"]

#: ghga-connector 5 is not on PyPI yet (PyPI's 4.0.1 has no ``sandbox`` extra): the
#: extra is installed from a clone of this repository.
INSTALL_HINT = "pip install '.[sandbox]' in the folder of the ghga-connector repository"


def _missing_extra(error: ModuleNotFoundError) -> str | None:
    """The missing third-party module, or None if the error is about this package."""
    name = (error.name or "").split(".")[0]
    if not name or name.startswith("ghga_"):
        return None
    return name


def main() -> None:
    """Run the sandbox command line; exit 2 with the install hint without the extra."""
    try:
        from ghga_sandbox.cli import run

        run()
    except ModuleNotFoundError as error:
        missing = _missing_extra(error)
        if missing is None:
            raise
        sys.stderr.write(
            f"ghga-sandbox: the sandbox needs: {INSTALL_HINT} (module {missing!r} is missing)\n"
        )
        sys.exit(2)


if __name__ == "__main__":
    main()
