"""All pygls glue: the language server, the stdio and daemon transports, and
every touch of pygls internals (pygls_internals.py).
"""
