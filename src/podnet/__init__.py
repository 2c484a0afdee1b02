"""podnet: the Kubernetes pod network model on the real Linux datapath."""

__version__ = "0.1.0"
