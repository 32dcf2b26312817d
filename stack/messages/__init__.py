"""Typed ISO 15118-20 / AppProtocol / xmldsig messages, generated from the XSDs."""
