"""Settings of a sandbox: the schema, where settings come from, and which of them the user approved. Light: the CLI imports it."""
