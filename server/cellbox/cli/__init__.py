"""The command line: click commands, console output, the JSON-RPC client and
the stdio bridge. Never imports lsp/, engine/, pygls or docker.
"""
