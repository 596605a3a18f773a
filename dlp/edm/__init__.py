"""Exact data match (EDM): keyed-hash indexes of clients' customer records, and the matcher over text."""
