"""The file gateway (role `filegw`): TCP on IM_FILE_PORT and HTTP routes for browsers."""

from tinyim.edges.filegw.http import file_routes
from tinyim.edges.filegw.tcp import file_listener
from tinyim.edges.filegw.transfers import FileGateway, FileLimits

__all__ = ["FileGateway", "FileLimits", "file_listener", "file_routes"]
