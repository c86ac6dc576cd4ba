"""tlsdiag: TLS handshake failure diagnosis for API gateways."""
__version__ = "0.1.0"
