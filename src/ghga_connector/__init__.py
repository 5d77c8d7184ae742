"""ghga-connector: upload and download encrypted files to and from GHGA.

The package is layered (see ``docs/architecture.md``):

* :mod:`ghga_connector.cli` parses arguments and maps errors to exit codes;
* :mod:`ghga_connector.inject` composes one HTTP client, the service adapters and
  the transfer components into a :class:`~ghga_connector.core.handler.TransferHandler`;
* :mod:`ghga_connector.core` holds the transfer engine, written against the ports in
  :mod:`ghga_connector.core.ports`;
* :mod:`ghga_connector.adapters` speaks HTTP to the GHGA services and to S3;
* :mod:`ghga_connector.c4gh` and :mod:`ghga_connector.core.planning` are pure leaves.
"""

from functools import cache

__all__ = ["__version__", "package_version"]


@cache
def package_version() -> str:
    """The installed version of ghga-connector (read lazily: importlib.metadata is slow)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("ghga-connector")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "0.0.0"


def __getattr__(name: str) -> str:
    if name == "__version__":
        return package_version()
    raise AttributeError(name)
