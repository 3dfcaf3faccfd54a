"""Domain modules. Each sits behind its ports; other code imports only a module's package `__init__`."""
