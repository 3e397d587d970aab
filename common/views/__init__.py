"""Read models: the queries over the state stores that the CLI prints and the web console shows,
written once for both."""
