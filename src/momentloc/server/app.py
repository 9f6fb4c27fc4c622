"""The demo server: a JSON API (OpenAPI at /api/openapi.json) and one static page over a folder of videos.

Safety rules: files are read only under the configured folder (no ``..``, no
absolute paths, no links out of it); uploads are size-capped while they stream;
localization has a time limit; clients get ``{"error": "..."}`` with a short
message, never a server path or a traceback.
"""

from __future__ import annotations

import asyncio
import logging
import mimetypes
import os
import re
import tempfile
from pathlib import Path
from typing import Any, Optional

from fastapi import FastAPI, File, HTTPException, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse
from starlette.responses import MalformedRangeHeader, RangeNotSatisfiable
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from momentloc.errors import LimitError, MomentlocError

log = logging.getLogger("momentloc.server")
STATIC = Path(__file__).resolve().parent / "static"
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")
MAX_NAME_PART = 255  # bytes of one path component (the usual file-system limit)
# An absolute path where a path starts (line start, after a space, quote, bracket or '='): "and/or" stays.
_ABS_PATH = re.compile(r"(?:^|(?<=[\s'\"(=]))(?:[A-Za-z]:)?[\\/][^\s:'\"]*")


class LocalizeRequest(BaseModel):
    """A query against one video of the folder."""

    video: str = Field(..., description="Video name as listed by GET /api/videos (relative to the folder).", max_length=512)
    query: str = Field(..., description="The sentence to ground.", min_length=1, max_length=500)
    top_k: int = Field(5, ge=1, le=50, description="How many moments to return.")


class MomentOut(BaseModel):
    """One predicted moment in seconds."""

    start: float
    end: float
    score: float


class LocalizeResponse(BaseModel):
    """Ranked moments (best first) for one query."""

    video: str
    query: str
    duration: float
    moments: list[MomentOut]


class VideoInfo(BaseModel):
    """A playable file of the folder."""

    name: str
    size: int


class VideoList(BaseModel):
    """Every video file under the folder."""

    videos: list[VideoInfo]


class UploadResponse(BaseModel):
    """The name a stored upload is listed and played under."""

    name: str
    size: int


class ErrorOut(BaseModel):
    """Every failure: a short message, nothing from the server's file system."""

    error: str


class HealthOut(BaseModel):
    """Liveness and what the server was started with."""

    status: str
    model: str
    supervision: Optional[str] = None
    features: Optional[str] = Field(None, description="How raw videos are encoded (encoder, fps, dim), if known.")
    max_upload_mb: float


def _errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for the failure codes a route can answer, all with the ErrorOut body."""
    return {code: {"model": ErrorOut} for code in codes}


# Served files: 200 whole, 206 one byte range; the type comes from the file name.
_FILE_CONTENT = {"video/*": {"schema": {"type": "string", "format": "binary"}},
                 "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}


class _VideoFile(FileResponse):
    """A FileResponse whose Range errors are ``{"error": ...}`` JSON, like every other failure of the API."""

    @classmethod
    def _parse_range_header(cls, http_range: str, file_size: int) -> list[tuple[int, int]]:
        # Starlette answers a bad Range with a plain-text body from inside the response; raising here instead
        # lets the app's own handler answer (the override is simply unused should Starlette rename the hook).
        try:
            return super()._parse_range_header(http_range, file_size)
        except MalformedRangeHeader as err:
            raise HTTPException(400, f"bad Range header: {err.content}") from None
        except RangeNotSatisfiable:
            raise HTTPException(416, f"range not satisfiable: the file has {file_size} bytes",
                                headers={"Content-Range": f"bytes */{file_size}"}) from None


def _public(message: str, root: Path) -> str:
    """A message safe to show a client: no server paths, one line, short."""
    text = message.splitlines()[0] if message else "request failed"
    text = text.replace(str(root), "").replace(str(root.resolve()), "")
    return _ABS_PATH.sub("<file>", text)[:200]


def resolve_video(root: Path, name: str) -> Path:
    """A file under ``root`` named by a relative path; 400 for unsafe names, 404 when absent."""
    from momentloc.video import VIDEO_SUFFIXES

    if not name or "\x00" in name or "\\" in name or name.startswith(("/", "~")) or re.match(r"^[A-Za-z]:", name):
        raise HTTPException(400, "invalid video name")
    parts = Path(name).parts
    if any(p in ("..", ".") or p.startswith(".") for p in parts):
        raise HTTPException(400, "invalid video name")
    if any(len(p.encode("utf-8", "surrogateescape")) > MAX_NAME_PART for p in parts):
        raise HTTPException(400, f"invalid video name: a part longer than {MAX_NAME_PART} bytes")
    try:
        path = (root / name).resolve()
        path.relative_to(root.resolve())  # a symlink out of the folder resolves outside it
        found = path.is_file()
    except ValueError:
        raise HTTPException(400, "invalid video name") from None
    except OSError:  # e.g. a name the file system cannot hold
        raise HTTPException(404, "no such video") from None
    if not found or path.suffix.lower() not in VIDEO_SUFFIXES:
        raise HTTPException(404, "no such video")
    return path


def _listed(root: Path) -> list[tuple[str, int]]:
    """(name, size) of each video under ``root`` that resolves inside it (links out of the folder are left out)."""
    from momentloc.video import list_videos

    inside = root.resolve()
    out = []
    for p in list_videos(root):
        try:
            real = p.resolve()
            real.relative_to(inside)
            if not real.is_file():
                continue
            out.append((p.relative_to(root).as_posix(), real.stat().st_size))
        except (ValueError, OSError):
            continue
    return out


class _BodyCap:
    """Counts request-body bytes on the upload route as they arrive and stops past the cap."""

    def __init__(self, app: Any, limit: int, path: str) -> None:
        self.app, self.limit, self.path = app, limit, path

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"] != self.path:
            return await self.app(scope, receive, send)
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.limit + 64 * 1024:
            response = JSONResponse({"error": f"upload larger than {self.limit // 2**20} MB"}, status_code=413)
            return await response(scope, receive, send)
        seen = 0

        async def counted() -> dict:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.limit + 64 * 1024:  # multipart framing adds a little
                raise HTTPException(413, f"upload larger than {self.limit // 2**20} MB")
            return message

        await self.app(scope, counted, send)


def create_app(predictor: Any, videos_dir: Path, max_upload_mb: float = 200.0, request_timeout_s: float = 120.0,
               max_parallel: int = 2) -> FastAPI:
    """The FastAPI app serving ``videos_dir`` with ``predictor`` (a ``momentloc.Predictor``).

    At most ``max_parallel`` localizations compute at once (each may take up to the predictor's query-batch memory);
    the others wait their turn within the time limit."""
    import threading

    compute = threading.BoundedSemaphore(max_parallel)
    root = Path(videos_dir).resolve()
    if not root.is_dir():
        raise MomentlocError(f"{videos_dir}: videos folder not found")
    limit = int(max_upload_mb * 2**20)
    app = FastAPI(title="momentloc", version="1", docs_url=None, redoc_url=None, openapi_url="/api/openapi.json",
                  description="Find the moment in a video that a sentence describes. Times are seconds.")
    app.add_middleware(_BodyCap, limit=limit, path="/api/upload")

    @app.exception_handler(StarletteHTTPException)  # also the router's own 404 / 405
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse({"error": _public(str(exc.detail), root)}, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def bad_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        if first.get("type") == "json_invalid":  # its loc is a character offset, not a field
            return JSONResponse({"error": f"invalid JSON body: {first.get('msg', 'bad JSON')}"[:200]}, status_code=422)
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body") or "request"
        return JSONResponse({"error": f"invalid {where}: {first.get('msg', 'bad value')}"[:200]}, status_code=422)

    @app.exception_handler(Exception)
    async def crash(request: Request, exc: Exception) -> JSONResponse:
        log.exception("request failed")  # the traceback stays in the server log
        return JSONResponse({"error": "internal error"}, status_code=500)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def page() -> HTMLResponse:
        return HTMLResponse((STATIC / "index.html").read_text(encoding="utf-8"))

    @app.get("/api/health", response_model=HealthOut, summary="Liveness and what model is loaded")
    async def health() -> HealthOut:
        spec = getattr(predictor, "feature_spec", None)
        return HealthOut(status="ok", model=predictor.cfg.model.name, supervision=getattr(predictor.model, "supervision", None),
                         features=spec.describe() if spec is not None else None, max_upload_mb=max_upload_mb)

    @app.get("/api/videos", response_model=VideoList, summary="Video files under the folder")
    async def videos() -> VideoList:
        return VideoList(videos=[VideoInfo(name=name, size=size) for name, size in _listed(root)])

    @app.post("/api/localize", response_model=LocalizeResponse, responses=_errors(400, 404, 413, 422, 504),
              summary="Top-k moments for a query")
    async def localize(req: LocalizeRequest) -> LocalizeResponse:
        path = resolve_video(root, req.video)

        def work() -> tuple[float, list]:
            with compute:
                enc = predictor.encode_video(path)  # cached by the predictor: one decode per video
                return enc.duration, predictor.localize(enc, req.query, top_k=req.top_k)[0]

        try:
            duration, moments = await asyncio.wait_for(run_in_threadpool(work), timeout=request_timeout_s)
        except asyncio.TimeoutError:
            raise HTTPException(504, f"localization took longer than {request_timeout_s:g} s; try again shortly") from None
        except LimitError as err:  # a video longer than the server accepts
            raise HTTPException(413, str(err)) from None
        except MomentlocError as err:
            raise HTTPException(400, str(err)) from None
        return LocalizeResponse(video=req.video, query=req.query, duration=duration,
                                moments=[MomentOut(start=m.start, end=m.end, score=m.score) for m in moments])

    @app.post("/api/upload", response_model=UploadResponse, responses=_errors(400, 413, 422, 507),
              summary="Add a video (multipart field 'file')")
    async def upload(file: UploadFile = File(..., description="A video file.")) -> UploadResponse:
        from momentloc.video import VIDEO_SUFFIXES

        base = Path(file.filename or "video").name
        stem, suffix = _SAFE_NAME.sub("_", Path(base).stem).strip("._")[:80] or "video", Path(base).suffix.lower()
        if suffix not in VIDEO_SUFFIXES:
            raise HTTPException(400, f"not a video file type (use one of {', '.join(VIDEO_SUFFIXES)})")
        try:
            fd, tmp = tempfile.mkstemp(prefix=".upload.", suffix=suffix, dir=root)
        except OSError as err:
            raise _storage_error(err) from None
        size = 0
        try:
            with os.fdopen(fd, "wb") as fh:
                while chunk := await file.read(1 << 20):
                    size += len(chunk)
                    if size > limit:
                        raise HTTPException(413, f"upload larger than {limit // 2**20} MB")
                    fh.write(chunk)
            if size == 0:
                raise HTTPException(400, "empty upload")
            target, n = root / f"{stem}{suffix}", 1
            while target.exists():
                n += 1
                target = root / f"{stem}_{n}{suffix}"
            os.replace(tmp, target)
        except OSError as err:
            raise _storage_error(err) from None
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        return UploadResponse(name=target.name, size=size)

    @app.get("/videos/{name:path}", summary="Stream a video (HTTP Range supported)", response_class=FileResponse,
             responses={200: {"content": _FILE_CONTENT, "description": "The whole file"},
                        206: {"content": _FILE_CONTENT, "description": "The requested byte range"},
                        **_errors(400, 404, 416, 422)})
    async def video_file(name: str) -> FileResponse:
        path = resolve_video(root, name)
        media = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        return _VideoFile(path, media_type=media if media.startswith("video/") else "application/octet-stream")

    return app


def _storage_error(err: OSError) -> HTTPException:
    """507 for a full disk (the client may retry later), else the error is the server's own (500)."""
    import errno

    if err.errno in (errno.ENOSPC, errno.EDQUOT):
        return HTTPException(507, "the server has no space left to store the upload")
    raise err


def serve(checkpoint: Path, videos_dir: Path, host: str = "127.0.0.1", port: int = 8000, max_upload_mb: float = 200.0,
          device: Optional[str] = None, weights: Optional[Path] = None, max_clips: Optional[int] = 4096,
          announce: Any = None) -> None:
    """Load a checkpoint and run the server with uvicorn until interrupted.

    Everything a request would need is checked first (the folder, the checkpoint, its feature spec and encoder), so a
    server that starts can answer; ``announce`` is called once it is about to listen."""
    from momentloc.predict import Predictor

    if not Path(videos_dir).is_dir():
        raise MomentlocError(f"{videos_dir}: videos folder not found")
    if not 0 < max_upload_mb < float("inf"):
        raise MomentlocError(f"max upload must be a positive number of MB, got {max_upload_mb}")
    predictor = Predictor.from_checkpoint(checkpoint, device=device, weights=weights, max_clips=max_clips)
    predictor.frame_encoder()  # a checkpoint without a feature spec could encode no video: refuse it now
    app = create_app(predictor, videos_dir, max_upload_mb=max_upload_mb)
    if announce is not None:
        announce()
    run_app(app, host=host, port=port)


def run_app(app: FastAPI, host: str = "127.0.0.1", port: int = 8000, log_level: str = "info") -> None:
    """Run an app with uvicorn until interrupted, with the connection limits every momentloc server uses."""
    import uvicorn

    # A bounded number of open connections and short keep-alives keep slow clients from piling up.
    uvicorn.run(app, host=host, port=port, log_level=log_level, limit_concurrency=64, timeout_keep_alive=5)
