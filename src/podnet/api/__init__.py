"""Resource models read from Kubernetes-shaped YAML/JSON, with validation that names the field."""
