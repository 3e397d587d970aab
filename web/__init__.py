"""The browser console (``da web``): read-only pages over the state stores and the pipeline's
status: the proctoring wait-time board, every stage's status, the OUS workflow board and the
class overview. Each page is rendered on the server, then kept live over server-sent events from
one snapshot computed per second and shared by every viewer, so fifty viewers cost the queries of
one. Everything it serves comes from the package itself (charts vendored from npm): it works
air-gapped. It reads through ``common`` only, like any other process of the pipeline.
"""
