"""Ports of TensorFlow Federated's own unit tests (issue 13)."""
