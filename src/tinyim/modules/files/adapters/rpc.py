"""FileService over gRPC: the typed servicer and the client adapter side by side, on the one protobuf
mapping of `tinyim.modules.files.protocol`."""

from __future__ import annotations

from collections.abc import Sequence

import grpc

from tinyim.infra.node_directory import NodeDirectory
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
    UploadRequest,
    UploadTicket,
)
from tinyim.modules.files.ports import FileApi
from tinyim.modules.files.protocol import (
    download_resp,
    download_ticket,
    file_task,
    task_info,
    upload_req,
    upload_request,
    upload_resp,
    upload_ticket,
)
from tinyim.pb import im_internal_pb2 as ipb
from tinyim.pb import im_internal_pb2_grpc as ipb_grpc
from tinyim.pb import im_protocol_pb2 as pb


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
