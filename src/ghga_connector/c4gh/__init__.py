"""Crypt4GH primitives: keys, sealed tokens, envelopes and segment ciphers."""
