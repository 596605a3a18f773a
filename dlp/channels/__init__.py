"""Channel adapters: each turns its native traffic into a Message and enforces the verdict."""
