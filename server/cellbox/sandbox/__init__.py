"""One Docker sandbox per workspace: its spec, attaching (bind or copy mode),
running blocks, the pool of sandboxes. Talks to an engine only through
engine/.
"""
