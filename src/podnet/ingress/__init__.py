"""Ingress, the way ingress-nginx serves it: `model` turns Ingresses, Services, EndpointSlices
and Secrets into servers, locations and upstreams (pure); `nginx` renders that model as a
standalone nginx.conf (pure); `controller` keeps nginx running on it, reloading on change."""
