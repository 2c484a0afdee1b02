"""The CNI protocol: versions, results, errors, the plugin side (skel) and the runtime side (runner).

Everything in this package uses the standard library only, so plugin executables start fast.
"""
