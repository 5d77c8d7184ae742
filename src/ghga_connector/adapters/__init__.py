"""Adapters: the only code that speaks HTTP to the GHGA services and to S3."""
