"""resolv.conf and hosts as the kubelet writes them (pure)."""

from __future__ import annotations

from podnet.kubelet.podfiles import fqdn, hosts_file, parse_resolv_conf, resolv_conf

NODE = "# generated\nnameserver 192.0.2.53\nnameserver 192.0.2.54\nsearch corp.example\noptions edns0 timeout:2\n"


def lines(text):
    return text.strip().splitlines()


def test_cluster_first():
    assert lines(resolv_conf("ClusterFirst", False, "web", "10.96.0.10", "cluster.local", NODE)) == [
        "nameserver 10.96.0.10", "search web.svc.cluster.local svc.cluster.local cluster.local", "options ndots:5"]


def test_default_is_the_nodes_resolver_and_cluster_first_with_host_network_falls_back_to_it():
    want = ["nameserver 192.0.2.53", "nameserver 192.0.2.54", "search corp.example", "options edns0 timeout:2"]
    assert lines(resolv_conf("Default", False, "web", "10.96.0.10", "cluster.local", NODE)) == want
    assert lines(resolv_conf("ClusterFirst", True, "web", "10.96.0.10", "cluster.local", NODE)) == want
    assert lines(resolv_conf("ClusterFirstWithHostNet", True, "web", "10.96.0.10", "cluster.local", NODE))[0] == \
        "nameserver 10.96.0.10"


def test_none_takes_only_dns_config():
    cfg = {"nameservers": ["1.1.1.1"], "searches": ["a.example"], "options": [{"name": "ndots", "value": "2"},
                                                                                {"name": "edns0"}]}
    assert lines(resolv_conf("None", False, "web", "10.96.0.10", "cluster.local", NODE, cfg)) == [
        "nameserver 1.1.1.1", "search a.example", "options ndots:2 edns0"]


def test_dns_config_is_merged_as_kubelet_does():
    cfg = {"nameservers": ["10.96.0.10", "1.1.1.1", "8.8.8.8", "9.9.9.9"], "searches": ["svc.cluster.local", "x.example"],
           "options": [{"name": "ndots", "value": "1"}, {"name": "single-request"}]}
    assert lines(resolv_conf("ClusterFirst", False, "web", "10.96.0.10", "cluster.local", NODE, cfg)) == [
        "nameserver 10.96.0.10", "nameserver 1.1.1.1", "nameserver 8.8.8.8",  # duplicates dropped, three at most
        "search web.svc.cluster.local svc.cluster.local cluster.local x.example",
        "options ndots:1 single-request"]  # the pod's option replaces the policy's


def test_parse_resolv_conf_last_search_wins_and_comments_go():
    rc = parse_resolv_conf("domain a.example\nsearch b.example c.example # trailing\n; comment\nnameserver 10.0.0.1\n")
    assert rc.searches == ("b.example", "c.example") and rc.nameservers == ("10.0.0.1",)


def test_hosts_file_puts_the_fqdn_first_then_aliases():
    text = hosts_file("10.244.1.5", "duo-host", fqdn("duo-host", "sub", "web", "cluster.local"),
                      [("127.0.0.1", ["foo.local", "bar.local"])])
    assert "127.0.0.1\tlocalhost" in lines(text)
    assert "10.244.1.5\tduo-host.sub.web.svc.cluster.local\tduo-host" in lines(text)
    assert lines(text)[-2:] == ["# Entries added by HostAliases.", "127.0.0.1\tfoo.local\tbar.local"]
    assert "10.244.1.5\tplain" in lines(hosts_file("10.244.1.5", "plain", fqdn("plain", "", "web", "cluster.local"), []))


def test_host_network_pods_see_the_nodes_hosts_file_plus_aliases():
    text = hosts_file("172.31.0.11", "node1", "", [("10.0.0.9", ["db"])], node_hosts="127.0.0.1 localhost\n172.31.0.11 node1")
    assert lines(text)[1:3] == ["127.0.0.1 localhost", "172.31.0.11 node1"] and lines(text)[-1] == "10.0.0.9\tdb"
