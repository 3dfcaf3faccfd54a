"""The PC client: `tinyim chat` (a full-screen terminal UI) and the scriptable `tinyim send`, `tail`,
`upload` and `download`, all on the Python SDK (`tinyim.client`)."""
