"""Registered architectures and factories that ship inside the packaged model."""
