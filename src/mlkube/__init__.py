"""mlkube: train a scikit-learn model, serve it fast and safely over HTTP, ship it to Kubernetes."""

__version__ = "0.1.0"
