"""relation: who may talk to whom (friends, blacklist and groups arrive with the social-graph issue)."""

from tinyim.modules.relation.ports import RelationApi, UserDirectory
from tinyim.modules.relation.service import RelationService

__all__ = ["RelationApi", "RelationService", "UserDirectory"]
