"""Relation in the client protocol: domain <-> protobuf, written once.

Part of the module's public API (like `__init__`): its gRPC adapters and the gateway edge both use it,
because the internal RPCs carry the client protocol's messages.
"""

from __future__ import annotations

from tinyim.kernel import Privacy, UserProfile
from tinyim.modules.relation.domain import Group, GroupRole, Member, SearchPage
from tinyim.pb import im_protocol_pb2 as pb


def user_info(p: UserProfile) -> pb.UserInfo:
    return pb.UserInfo(user_id=p.user_id, nickname=p.nickname, username=p.username)


def profile(u: pb.UserInfo) -> UserProfile:
    return UserProfile(u.user_id, u.username, u.nickname)


def group_info(g: Group) -> pb.GroupInfo:
    return pb.GroupInfo(
        group_id=g.group_id,
        group_name=g.name,
        owner_id=g.owner_id,
        announcement=g.announcement,
        member_count=g.member_count,
    )


def group(g: pb.GroupInfo) -> Group:
    return Group(g.group_id, g.group_name, g.owner_id, g.announcement, g.member_count)


def group_members_resp(found: list[tuple[UserProfile, Member]]) -> pb.GroupMemberResp:
    return pb.GroupMemberResp(
        members=[user_info(p) for p, _ in found],
        member_infos=[
            pb.GroupMemberInfo(user=user_info(p), role=pb.GroupRole.ValueType(int(m.role))) for p, m in found
        ],
    )


def group_members(resp: pb.GroupMemberResp) -> list[tuple[UserProfile, Member]]:
    return [(profile(m.user), Member(m.user.user_id, GroupRole(int(m.role)))) for m in resp.member_infos]


# user search
def search_resp(page: SearchPage) -> pb.UserSearchResp:
    return pb.UserSearchResp(users=[user_info(p) for p in page.users], next_cursor=page.next_cursor)


def search_page(resp: pb.UserSearchResp) -> SearchPage:
    return SearchPage([profile(u) for u in resp.users], resp.next_cursor)


def privacy_pb(p: Privacy) -> pb.PrivacySettings:
    return pb.PrivacySettings(hide_from_nickname_search=p.hide_from_nickname_search)


def privacy(p: pb.PrivacySettings) -> Privacy:
    return Privacy(hide_from_nickname_search=p.hide_from_nickname_search)


# group owner actions
def group_update_req(group_id: int, name: str | None, announcement: str | None) -> pb.GroupUpdateReq:
    """A GroupUpdateReq that sets only the fields given (None = leave as is)."""
    req = pb.GroupUpdateReq(group_id=group_id)
    if name is not None:
        req.group_name = name
    if announcement is not None:
        req.announcement = announcement
    return req


def group_update_fields(req: pb.GroupUpdateReq) -> tuple[str | None, str | None]:
    """The fields a GroupUpdateReq sets (None = leave as is)."""
    name = req.group_name if req.HasField("group_name") else None
    announcement = req.announcement if req.HasField("announcement") else None
    return name, announcement
