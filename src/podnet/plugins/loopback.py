"""The `loopback` plugin: bring `lo` up in the container (ADD) or down (DEL)."""

from __future__ import annotations

from ..cni import errors
from ..cni.errors import CNIError
from ..cni.skel import CmdArgs, Plugin, main as skel_main
from ..kernel import netns, rtnl


def _lo(args: CmdArgs, up: bool | None) -> tuple[rtnl.Link, list[rtnl.Address]]:
    with netns.entered(args.netns):
        with rtnl.Netlink() as nl:
            link = nl.link("lo")
            if link is None:
                raise CNIError(errors.INTERNAL, "no loopback interface in the container")
            if up is not None and link.up != up:
                nl.set_link(link.index, up=up)
                link = nl.link("lo")
            return link, nl.addresses(link.index)


def add(args: CmdArgs) -> dict:
    try:
        _, addrs = _lo(args, True)
    except netns.NetnsNotFound as e:
        raise CNIError(errors.UNKNOWN_CONTAINER, f"failed to open netns {args.netns!r}", str(e)) from None
    return {
        "cniVersion": "1.1.0",
        "interfaces": [{"name": "lo", "mac": "00:00:00:00:00:00", "sandbox": args.netns}],
        "ips": [{"interface": 0, "address": a.cidr} for a in addrs],
        "dns": {},
    }


def delete(args: CmdArgs) -> None:
    if not args.netns:
        return
    try:
        _lo(args, False)
    except netns.NetnsNotFound:
        pass


def check(args: CmdArgs) -> None:
    if args.prev_result() is None:
        raise CNIError(errors.INTERNAL, "loopback: Required prevResult missing")
    try:
        link, _ = _lo(args, None)
    except netns.NetnsNotFound as e:
        raise CNIError(errors.UNKNOWN_CONTAINER, f"failed to open netns {args.netns!r}", str(e)) from None
    if not link.up:
        raise CNIError(errors.INTERNAL, "loopback interface is down")


PLUGIN = Plugin(name="loopback", add=add, delete=delete, check=check, gc=lambda a: None, status=lambda a: None)


def main() -> None:
    skel_main(PLUGIN)


if __name__ == "__main__":
    main()
