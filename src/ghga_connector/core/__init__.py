"""The transfer engine: written against the ports in :mod:`ghga_connector.core.ports`."""
