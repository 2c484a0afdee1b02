"""CNI plugin executables. Each imports the standard library and podnet's light modules only."""
