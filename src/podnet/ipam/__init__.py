"""IP address management: host-local compatible ranges and on-disk store (files only, no kernel)."""
