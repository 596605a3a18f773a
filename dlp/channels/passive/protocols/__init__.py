"""Application-protocol parsers over reassembled TCP streams: each turns bytes into transactions."""
