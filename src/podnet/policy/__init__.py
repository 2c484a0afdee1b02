"""NetworkPolicy: label selectors, the API's semantics as a pure evaluator, and (next) the
nftables renderer the agents apply."""
