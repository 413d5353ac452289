"""Editor documents, pure: finding blocks, selecting them for a request, diagnostics from tracebacks, per-document results."""
