"""`lotledger web`: QA's read-only web app, a face only. Flask views (app.py) over one gRPC
reader that holds no key (source.py), the trace picture's layout (graph.py) and what a search
box entry means (search.py), with its templates/ and static/ (the in-browser proof check,
vendored Cytoscape.js)."""
