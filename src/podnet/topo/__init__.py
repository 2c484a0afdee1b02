"""`podnet topo`: one model of the live pod network (nodes, namespaces, devices, pods, Services,
NetworkPolicies and how they connect), drawn as text, JSON, DOT, SVG or a self-contained HTML
page, or served as a local page that follows changes live.

    model.py    the model: plain data with stable ids (pure)
    collect.py  the model from the store and the kernel (reads only)
    render.py   text, DOT, SVG (Graphviz), HTML (pure, but for running `dot`)
    page.py     the page's HTML, CSS and JS (no network fetches, no CDN)
    serve.py    the local read-only web server: /, /model.json, /events (Server-Sent Events)
"""
