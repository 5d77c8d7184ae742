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

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("ghga-connector")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0"

__all__ = ["__version__"]
