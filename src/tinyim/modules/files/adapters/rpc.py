"""FileService over gRPC: the typed servicer and the client adapter side by side, one protobuf mapping.

The mapping functions are also what the chat gateway uses to answer FileUploadReq / FileDownloadReq.
"""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import quote

import grpc

from tinyim.infra.discovery import NodeDirectory
from tinyim.infra.rpc import (
    Channels,
    Ctx,
    Registrar,
    RoleChannels,
    caller_of,
    context_of,
    translate_errors,
)
from tinyim.kernel import Caller
from tinyim.modules.files.domain import (
    DownloadTicket,
    FileStatus,
    FileTask,
    GatewayEndpoint,
    UploadRequest,
    UploadTicket,
)
from tinyim.modules.files.ports import FileApi
from tinyim.pb import im_internal_pb2 as ipb
from tinyim.pb import im_internal_pb2_grpc as ipb_grpc
from tinyim.pb import im_protocol_pb2 as pb

DOWNLOAD_PATH = "/files/downloads/"


# ---------- mapping (protobuf <-> domain), written once ----------
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


# ---------- server side ----------
class FileServicer(ipb_grpc.FileServiceServicer):
    def __init__(self, files: FileApi) -> None:
        self._files = files

    @translate_errors
    async def ApplyUpload(self, request: ipb.ApplyUploadInternalReq, context: Ctx) -> pb.FileUploadResp:
        return upload_resp(
            await self._files.apply_upload(caller_of(request.ctx), upload_request(request.req))
        )

    @translate_errors
    async def UpdateFileStatus(
        self, request: ipb.UpdateFileStatusReq, context: Ctx
    ) -> ipb.UpdateFileStatusResp:
        await self._files.update_status(
            request.task_id,
            FileStatus(request.status),
            received=request.current_size,
            blob_key=request.blob_key,
            error=request.error,
        )
        return ipb.UpdateFileStatusResp(success=True)

    @translate_errors
    async def GetTask(self, request: ipb.FileTaskReq, context: Ctx) -> ipb.FileTaskInfo:
        return task_info(await self._files.get_task(request.task_id))

    @translate_errors
    async def ApplyDownload(self, request: ipb.ApplyDownloadInternalReq, context: Ctx) -> pb.FileDownloadResp:
        return download_resp(await self._files.apply_download(caller_of(request.ctx), request.req.task_id))

    @translate_errors
    async def ShareFile(self, request: ipb.ShareFileReq, context: Ctx) -> ipb.FileTaskInfo:
        return task_info(
            await self._files.share(request.sender_id, request.task_id, list(request.reader_ids))
        )


def files_registrar(files: FileApi) -> Registrar:
    def register(server: grpc.aio.Server) -> Sequence[str]:
        ipb_grpc.add_FileServiceServicer_to_server(FileServicer(files), server)
        return ["im.FileService"]

    return register


# ---------- client side: the same FileApi, served by a remote filemeta node ----------
class GrpcFileClient:
    @classmethod
    def connect(cls, directory: NodeDirectory, channels: Channels, deadline_seconds: float) -> GrpcFileClient:
        """The client of the `filemeta` role's live nodes (the registry finds them), over typed stubs."""
        return cls(RoleChannels("filemeta", directory, channels, ipb_grpc.FileServiceStub, deadline_seconds))

    def __init__(self, remote: RoleChannels[ipb_grpc.FileServiceAsyncStub]) -> None:
        self._remote = remote

    async def apply_upload(self, caller: Caller, req: UploadRequest) -> UploadTicket:
        msg = ipb.ApplyUploadInternalReq(ctx=context_of(caller), req=upload_req(req))
        # a new task is not idempotent (a retry would make a second one); follow-ups are
        r = await self._remote.invoke(
            lambda s, t: s.ApplyUpload(msg, timeout=t), idempotent=bool(req.task_id)
        )
        return upload_ticket(r)

    async def apply_download(self, caller: Caller, task_id: str) -> DownloadTicket:
        msg = ipb.ApplyDownloadInternalReq(ctx=context_of(caller), req=pb.FileDownloadReq(task_id=task_id))
        return download_ticket(await self._remote.invoke(lambda s, t: s.ApplyDownload(msg, timeout=t)))

    async def get_task(self, task_id: str) -> FileTask:
        msg = ipb.FileTaskReq(task_id=task_id)
        return file_task(await self._remote.invoke(lambda s, t: s.GetTask(msg, timeout=t)))

    async def update_status(
        self, task_id: str, status: FileStatus, *, received: int = 0, blob_key: str = "", error: str = ""
    ) -> None:
        msg = ipb.UpdateFileStatusReq(
            task_id=task_id, status=int(status), current_size=received, blob_key=blob_key, error=error
        )
        await self._remote.invoke(lambda s, t: s.UpdateFileStatus(msg, timeout=t))

    async def share(self, sender_id: int, task_id: str, reader_ids: Sequence[int]) -> FileTask:
        msg = ipb.ShareFileReq(sender_id=sender_id, task_id=task_id, reader_ids=list(reader_ids))
        return file_task(await self._remote.invoke(lambda s, t: s.ShareFile(msg, timeout=t)))
