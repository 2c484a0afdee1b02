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


PLUGIN = Plugin(name="host-local", add=add, delete=delete, check=check, gc=gc, status=lambda a: None)


def main() -> None:
    skel_main(PLUGIN)


if __name__ == "__main__":
    main()
