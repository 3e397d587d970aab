"""The console's pages. Each ``build(ctx)`` reads what its page shows (through ``common.views``
and the status feed) and returns its sections as HTML and its charts as data; the server renders
a first page from them and sends the same to every viewer once a second."""
