"""The decision explorer: pages at /ui of `router-ml serve` over its audit database.

    queries.py   the figures, as aggregate SQL over the audit log (read-only)
    charts.py    inline SVG charts
    routes.py    the FastAPI routes and the access check (read or admin scope; a login page
                 keeps a browser's token in a cookie)
    templates/   Jinja2 pages; static/ the stylesheet. Shipped in the package: no CDN, no build step.
"""
