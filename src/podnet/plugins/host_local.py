"""The `host-local` IPAM plugin, compatible with the reference's configuration and store."""

from __future__ import annotations

from ..cni import errors
from ..cni.errors import CNIError
from ..cni.skel import CmdArgs, Plugin, main as skel_main
from ..ipam import hostlocal


def add(args: CmdArgs) -> dict:
    cfg = hostlocal.IPAMConfig.from_conf(args.conf, args.args_dict())
    return hostlocal.allocate(cfg, args.container_id, args.ifname)


def delete(args: CmdArgs) -> None:
    cfg = hostlocal.IPAMConfig.from_conf(args.conf)
    hostlocal.release(cfg, args.container_id, args.ifname)


def check(args: CmdArgs) -> None:
    cfg = hostlocal.IPAMConfig.from_conf(args.conf)
    from ..ipam.store import Store

    with Store(cfg.data_dir, cfg.network) as store:
        if not store.by_attachment(args.container_id, args.ifname):
            raise CNIError(errors.INTERNAL, f"host-local: Failed to find address added by container {args.container_id}")


def gc(args: CmdArgs) -> None:
    valid = args.conf.get("cni.dev/valid-attachments")
    if valid is None:
        valid = []
    if not isinstance(valid, list):
        raise CNIError(errors.INVALID_NETWORK_CONFIG, "cni.dev/valid-attachments must be a list")
    hostlocal.collect_garbage(hostlocal.IPAMConfig.from_conf(args.conf), valid)


def status(args: CmdArgs) -> None:
    """Code 50 when an ADD could not succeed: the store is not writable, or a range set is full."""
    import ipaddress
    import os

    from ..ipam.store import Store

    cfg = hostlocal.IPAMConfig.from_conf(args.conf)
    directory = os.path.join(cfg.data_dir, cfg.network)
    probe = directory if os.path.isdir(directory) else cfg.data_dir
    while not os.path.exists(probe):
        probe = os.path.dirname(probe)
    if not os.access(probe, os.W_OK):
        raise CNIError(errors.PLUGIN_NOT_AVAILABLE, f"host-local: {probe} is not writable")
    with Store(cfg.data_dir, cfg.network) as store:
        taken = {ipaddress.ip_address(ip) for ip, _, _ in store.allocations() if ip[0].isalnum()}
    for idx, rset in enumerate(cfg.range_sets):
        if all(ip in taken for ip, _ in rset.candidates(None)):
            raise CNIError(errors.PLUGIN_NOT_AVAILABLE, f"host-local: no free address in range set {idx} ({rset})")


PLUGIN = Plugin(name="host-local", add=add, delete=delete, check=check, gc=gc, status=status)


def main() -> None:
    skel_main(PLUGIN)


if __name__ == "__main__":
    main()
