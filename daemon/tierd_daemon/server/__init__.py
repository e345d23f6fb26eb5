"""The control plane: Unix socket, peer credentials, framing, dispatch."""
