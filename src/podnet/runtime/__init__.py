"""The node's process runtime: supervised processes (pods' containers, the agent, side services)
and the status files they leave for everyone else to read."""
