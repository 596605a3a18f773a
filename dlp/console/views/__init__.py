"""The console's pages, one module per area; `routes()` lists them all."""
