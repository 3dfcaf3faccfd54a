"""Files in the client and internal protocols: domain <-> protobuf, written once.

Part of the module's public API (like `__init__`): the gRPC servicer and client (`adapters/rpc.py`),
the chat gateway (FileUploadReq / FileDownloadReq) and the file gateway all use it.
"""

from __future__ import annotations

from urllib.parse import quote

from tinyim.modules.files.domain import (
    DownloadTicket,
    FileStatus,
    FileTask,
    GatewayEndpoint,
    UploadRequest,
    UploadTicket,
)
from tinyim.pb import im_internal_pb2 as ipb
from tinyim.pb import im_protocol_pb2 as pb

DOWNLOAD_PATH = "/files/downloads/"


def task_info(task: FileTask) -> ipb.FileTaskInfo:
    return ipb.FileTaskInfo(
        task_id=task.task_id,
        owner_id=task.owner_id,
        file_name=task.file_name,
        file_size=task.size,
        md5=task.md5,
        status=int(task.status),
        received=task.received,
        blob_key=task.blob_key,
        expires_at=task.expires_at,
        proof_offset=task.proof_offset,
        proof_length=task.proof_length,
        error=task.error,
    )


def file_task(m: ipb.FileTaskInfo) -> FileTask:
    return FileTask(
        task_id=m.task_id,
        owner_id=m.owner_id,
        file_name=m.file_name,
        size=m.file_size,
        md5=m.md5,
        status=FileStatus(m.status),
        received=m.received,
        blob_key=m.blob_key,
        expires_at=m.expires_at,
        proof_offset=m.proof_offset,
        proof_length=m.proof_length,
        error=m.error,
    )


def upload_request(m: pb.FileUploadReq) -> UploadRequest:
    return UploadRequest(m.file_name, m.file_size, m.md5, m.task_id, m.proof)


def upload_req(r: UploadRequest) -> pb.FileUploadReq:
    return pb.FileUploadReq(
        file_name=r.file_name, file_size=r.size, md5=r.md5, task_id=r.task_id, proof=r.proof
    )


def upload_resp(t: UploadTicket) -> pb.FileUploadResp:
    g = t.gateway
    return pb.FileUploadResp(
        task_id=t.task_id,
        is_instant=t.is_instant,
        gateway_ip=g.host if g else "",
        gateway_port=g.port if g else 0,
        upload_token=t.token,
        offset=t.offset,
        proof_required=t.proof_required,
        proof_offset=t.proof_offset,
        proof_length=t.proof_length,
        http_url=g.http_url if g else "",
        chunk_size=t.chunk_size,
    )


def upload_ticket(m: pb.FileUploadResp) -> UploadTicket:
    gateway = GatewayEndpoint(m.gateway_ip, m.gateway_port, m.http_url) if m.gateway_port else None
    return UploadTicket(
        m.task_id,
        m.is_instant,
        gateway,
        m.upload_token,
        m.offset,
        m.chunk_size,
        m.proof_required,
        m.proof_offset,
        m.proof_length,
    )


def download_url(http_base: str, task_id: str, token: str) -> str:
    return f"{http_base}{DOWNLOAD_PATH}{task_id}?token={quote(token)}"


def download_resp(t: DownloadTicket) -> pb.FileDownloadResp:
    g = t.gateway
    return pb.FileDownloadResp(
        task_id=t.task.task_id,
        file_name=t.task.file_name,
        file_size=t.task.size,
        md5=t.task.md5,
        gateway_ip=g.host if g else "",
        gateway_port=g.port if g else 0,
        download_token=t.token,
        http_url=download_url(g.http_url, t.task.task_id, t.token) if g else "",
    )


def download_ticket(m: pb.FileDownloadResp) -> DownloadTicket:
    task = FileTask(m.task_id, 0, m.file_name, m.file_size, m.md5, FileStatus.FINISHED, m.file_size)
    base = m.http_url.split(DOWNLOAD_PATH, 1)[0]
    gateway = GatewayEndpoint(m.gateway_ip, m.gateway_port, base) if m.gateway_port else None
    return DownloadTicket(task, gateway, m.download_token)
