"""The only package that imports docker: the Engine protocol, the Docker implementation, and where the engine is (contexts)."""
