"""Infrastructure shared by adapters and edges: database engines, logging, metrics, ids."""
