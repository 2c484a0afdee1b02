"""The Ingress controller's bookkeeping (cache from the watch, what needs a new render, whose
warnings) and its rule that a configuration nginx refuses never replaces the running one."""

from __future__ import annotations

import json
import os
import shutil
import signal
import time

import pytest

from podnet.ingress import controller as ctl
from podnet.ingress import nginx as nginx_mod
from podnet.kernel import netns as kns
from podnet.store import Event
from podnet.store.sqlite import SQLiteStore

ING = {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
       "metadata": {"name": "web", "namespace": "default", "uid": "u1", "creationTimestamp": "2026-01-01T00:00:00Z"},
       "spec": {"defaultBackend": {"service": {"name": "web", "port": {"number": 80}}}}, "status": {"loadBalancer": {}}}
CLASS = {"apiVersion": "networking.k8s.io/v1", "kind": "IngressClass",
         "metadata": {"name": "nginx", "annotations": {"ingressclass.kubernetes.io/is-default-class": "true"}},
         "spec": {"controller": "k8s.io/ingress-nginx"}}
SLICES = {"apiVersion": "v1", "kind": "List", "items": [{"endpoints": [{"addresses": ["10.244.1.5"], "conditions": {"ready": True}}],
                                                         "ports": [{"name": "", "port": 8080, "protocol": "TCP"}]}]}


def controller(tmp_path, **kw) -> ctl.Controller:
    return ctl.Controller(ctl.Config(f"sqlite://{tmp_path}/s.db", str(tmp_path / "work"), **kw))


def put(key, obj, rev=1):
    return Event("put", key, json.dumps(obj), rev)


def test_the_cache_reads_every_collection_by_its_key(tmp_path):
    c = controller(tmp_path)
    assert c.apply_event(put("/podnet/ingressclasses/nginx", CLASS))  # cluster-scoped: no namespace
    assert c.apply_event(put("/podnet/endpointslices/default/web", SLICES))  # a List, no metadata
    assert c.apply_event(put("/podnet/ingresses/default/web", ING))
    assert c.cache.by_name("classes")[("", "nginx")]["spec"]["controller"] == "k8s.io/ingress-nginx"
    assert c.cache.by_name("slices")[("default", "web")]["items"][0]["ports"][0]["port"] == 8080
    assert [i["metadata"]["name"] for i in c.ours()] == ["web"]  # the default class is ours
    assert not c.apply_event(put("/podnet/pods/default/x", {"metadata": {"name": "x", "namespace": "default"}}))


def test_only_real_changes_call_for_a_new_render(tmp_path):
    c = controller(tmp_path)
    c.apply_event(put("/podnet/ingresses/default/web", ING))
    c.touched.clear()
    assert not c.apply_event(put("/podnet/ingresses/default/web", {**ING, "status": {"loadBalancer": {"ingress": [{"ip": "1.2.3.4"}]}}}))
    assert not c.touched  # its own status write
    changed = {**ING, "spec": {"defaultBackend": {"service": {"name": "other", "port": {"number": 80}}}}}
    assert c.apply_event(put("/podnet/ingresses/default/web", changed)) and c.touched == {("default", "web")}
    assert c.apply_event(Event("delete", "/podnet/ingresses/default/web", "", 3))
    assert not c.ours()


def test_a_class_of_another_controller_is_not_ours(tmp_path):
    c = controller(tmp_path)
    other = {**CLASS, "metadata": {"name": "traefik"}, "spec": {"controller": "traefik.io/ingress-controller"}}
    c.apply_event(put("/podnet/ingressclasses/traefik", other))
    c.apply_event(put("/podnet/ingresses/default/web", {**ING, "spec": {**ING["spec"], "ingressClassName": "traefik"}}))
    assert c.ours() == []


def test_warnings_are_matched_by_whole_name():
    assert ctl.names("default/a and default/b both define foo.example/x: default/a, the oldest, wins", "default/a")
    assert not ctl.names("default/ab's path /x wins", "default/a")
    assert ctl.names("default/a's path /x wins", "default/a")


@pytest.mark.root
def test_a_config_nginx_refuses_never_replaces_the_running_one(tmp_path, netns, monkeypatch):
    if shutil.which("nginx") is None:
        pytest.skip("needs nginx")
    ns = netns.new("ictl")
    store = SQLiteStore(str(tmp_path / "s.db"))
    store.put("/podnet/ingressclasses/nginx", json.dumps(CLASS))
    store.put("/podnet/ingresses/default/web", json.dumps(ING))
    c = controller(tmp_path, http_port=18080, https_port=18443, status_port=18254)
    c.store = store
    try:
        with kns.entered(f"/var/run/netns/{ns}"):  # nginx and nginx -t bind inside it only
            c.load_all()
            good = c.sync()
            assert c.live_text and c.nginx_alive()
            live = open(c.conf_path).read()
            monkeypatch.setattr(nginx_mod, "render", lambda *a, **k: live.replace("worker_connections", "no_such_directive"))
            c.touched.add(("default", "web"))
            c.sync()
            assert open(c.conf_path).read() == live and c.live_text == live  # the good one stays
            assert "no_such_directive" in c.rejected[1]
            c.write_status(good)
            status = json.loads(store.get("/podnet/ingresses/default/web").value)["status"]
            assert any("nginx refused the configuration" in p for p in status["podnet"]["problems"])
            pid = c.nginx.pid
            c.sync()  # the same refused render is not tried again
            assert c.nginx.pid == pid and c.nginx_alive()
    finally:
        if c.nginx is not None and c.nginx.poll() is None:
            c.nginx.send_signal(signal.SIGQUIT)
            try:
                c.nginx.wait(10)
            except Exception:  # noqa: BLE001
                c.nginx.kill()
        store.close()
    time.sleep(0.1)
    assert not os.path.exists(f"/proc/{pid}") or open(f"/proc/{pid}/stat").read().split()[2] == "Z"
