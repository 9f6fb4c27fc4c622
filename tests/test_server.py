"""The demo server's JSON API: listing, localizing (cached), uploads with a cap, streaming, and path safety."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

pytest.importorskip("av", reason="PyAV is the [video] extra")
pytest.importorskip("fastapi", reason="FastAPI is the [serve] extra")

from fastapi.testclient import TestClient  # noqa: E402

from momentloc.server.app import create_app  # noqa: E402
from momentloc.video import TinyEncoder, write_synthetic_video  # noqa: E402

SENTENCES = ["the screen turns red.", "a green picture appears.", "everything is blue for a while."]


def make_predictor(seed: int = 0):
    """An untrained span model over tiny-encoder features at 2 fps: enough to exercise the whole path."""
    import torch

    from momentloc.config import validate
    from momentloc.data.text import build_hashed
    from momentloc.models.base import InputSpec
    from momentloc.models.build import build_model
    from momentloc.predict import Predictor

    cfg = validate({"data": {"dataset": "activitynet", "feature_dim": 32, "text": {"kind": "hash", "dim": 24}},
                    "model": {"name": "span", "params": {"hidden": 16}}})
    vocab = build_hashed(SENTENCES, 24)
    torch.manual_seed(seed)
    model = build_model(cfg, InputSpec(video_dim=32, text_dim=24, vocab_size=len(vocab), num_clips=None))
    enc = TinyEncoder()
    return Predictor.from_model(model, vocab, cfg, feature_spec=enc.spec(2.0), encoder=enc)


def make_videos(folder: Path) -> Path:
    """Two playable clips (WebM/VP8 plays in every browser) plus files that must not be listed."""
    folder.mkdir(parents=True, exist_ok=True)
    write_synthetic_video(folder / "colours.webm", [("red", 2.0), ("green", 2.0), ("blue", 2.0)], fps=10, size=(160, 120))
    write_synthetic_video(folder / "sub" / "short.webm", [("yellow", 1.0), ("blue", 2.0)], fps=10)
    (folder / "notes.txt").write_text("not a video")
    (folder / ".hidden.mp4").write_bytes(b"hidden")
    return folder


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> dict:
    """A videos folder, a secret file beside it (outside), and the app over them."""
    base = tmp_path_factory.mktemp("site")
    root = make_videos(base / "videos")
    secret = base / "secret.mp4"
    secret.write_bytes(b"secret bytes")
    os.symlink(secret, root / "link.mp4")
    predictor = make_predictor()
    app = create_app(predictor, root, max_upload_mb=0.5)
    return {"root": root, "secret": secret, "predictor": predictor, "client": TestClient(app), "base": base}


def no_leak(response, site) -> None:
    """An error is {"error": short message} without server paths or traceback text."""
    body = response.json()
    assert set(body) == {"error"} and len(body["error"]) <= 200
    for needle in (str(site["base"]), str(site["root"]), "Traceback", "File \""):
        assert needle not in response.text


def test_health_list_and_page(site) -> None:
    c = site["client"]
    health = c.get("/api/health").json()
    assert health["status"] == "ok" and health["model"] == "span" and "tiny" in health["features"]
    names = [v["name"] for v in c.get("/api/videos").json()["videos"]]
    assert names == ["colours.webm", "sub/short.webm"]  # no .txt, no hidden file, no link out of the folder
    page = c.get("/")
    assert page.status_code == 200 and "<video" in page.text
    assert "src=\"http" not in page.text and "cdn" not in page.text.lower()  # the page needs no network


def test_localize_returns_ranked_moments_and_encodes_once(site) -> None:
    c, pred = site["client"], site["predictor"]
    before = pred.videos_encoded
    r = c.post("/api/localize", json={"video": "colours.webm", "query": "the screen turns red", "top_k": 3})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["duration"] == pytest.approx(6.0, abs=0.01) and len(body["moments"]) == 3
    scores = [m["score"] for m in body["moments"]]
    assert scores == sorted(scores, reverse=True)
    assert all(0 <= m["start"] < m["end"] <= 6.0 + 1e-6 for m in body["moments"])
    for q in ("a green picture appears", "blue"):
        assert c.post("/api/localize", json={"video": "colours.webm", "query": q}).status_code == 200
    assert pred.videos_encoded == before + 1
    assert len(c.post("/api/localize", json={"video": "sub/short.webm", "query": "blue", "top_k": 2}).json()["moments"]) == 2


def test_bad_requests_get_short_errors(site) -> None:
    c = site["client"]
    unknown = c.post("/api/localize", json={"video": "colours.webm", "query": "zebra xylophone"})
    assert unknown.status_code == 400 and "no known words" in unknown.json()["error"]
    no_leak(unknown, site)
    missing = c.post("/api/localize", json={"video": "nope.webm", "query": "red"})
    assert missing.status_code == 404
    no_leak(missing, site)
    for r in (c.get("/nothing"), c.put("/api/localize"), c.get("/videos/../../secret.mp4")):
        assert r.status_code in (404, 405)
        no_leak(r, site)
    invalid = c.post("/api/localize", json={"video": "colours.webm", "query": "red", "top_k": 0})
    assert invalid.status_code == 422 and "top_k" in invalid.json()["error"]
    no_leak(invalid, site)


@pytest.mark.parametrize("name", ["../secret.mp4", "sub/../../secret.mp4", "/etc/passwd", "ABSOLUTE", "link.mp4",
                                  "..\\secret.mp4", "~/secret.mp4", "C:/secret.mp4", ".hidden.mp4"])
def test_paths_outside_the_folder_are_refused(site, name) -> None:
    name = str(site["secret"]) if name == "ABSOLUTE" else name
    r = site["client"].post("/api/localize", json={"video": name, "query": "red"})
    assert 400 <= r.status_code < 500
    no_leak(r, site)
    assert "secret bytes" not in r.text


@pytest.mark.parametrize("url", ["/videos/..%2Fsecret.mp4", "/videos/%2E%2E/secret.mp4", "/videos/sub%2F..%2F..%2Fsecret.mp4",
                                 "/videos/%2Fetc%2Fpasswd", "/videos/link.mp4"])
def test_streaming_refuses_paths_outside_the_folder(site, url) -> None:
    r = site["client"].get(url)
    assert 400 <= r.status_code < 500 and b"secret bytes" not in r.content
    no_leak(r, site)


def test_streaming_supports_ranges(site) -> None:
    c = site["client"]
    size = (site["root"] / "colours.webm").stat().st_size
    whole = c.get("/videos/colours.webm")
    assert whole.status_code == 200 and len(whole.content) == size
    part = c.get("/videos/colours.webm", headers={"Range": "bytes=10-109"})
    assert part.status_code == 206 and part.content == whole.content[10:110]


def test_upload_is_stored_under_a_safe_name_and_capped(site) -> None:
    c, root = site["client"], site["root"]
    data = (root / "sub" / "short.webm").read_bytes()
    r = c.post("/api/upload", files={"file": ("../../evil name.webm", data, "video/webm")})
    assert r.status_code == 200, r.text
    assert r.json()["name"] == "evil_name.webm" and (root / "evil_name.webm").read_bytes() == data
    assert c.post("/api/upload", files={"file": ("x.webm", data)}).json()["name"] == "x.webm"
    assert c.post("/api/upload", files={"file": ("x.webm", data)}).json()["name"] == "x_2.webm"
    big = c.post("/api/upload", files={"file": ("big.mp4", b"\0" * (700 * 1024))})
    assert big.status_code == 413 and "larger than" in big.json()["error"]
    no_leak(big, site)

    def chunks():  # no Content-Length: the cap must hold while the body streams
        yield b"--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"s.mp4\"\r\n\r\n"
        for _ in range(40):
            yield b"\0" * 65536
        yield b"\r\n--b--\r\n"

    streamed = c.post("/api/upload", content=chunks(), headers={"Content-Type": "multipart/form-data; boundary=b"})
    assert streamed.status_code == 413
    kind = c.post("/api/upload", files={"file": ("run.sh", b"#!/bin/sh")})
    assert kind.status_code == 400
    no_leak(kind, site)
    left = sorted(p.name for p in root.iterdir())
    assert "big.mp4" not in left and "s.mp4" not in left and not any(n.startswith(".upload") for n in left)


def test_slow_and_crashing_requests(tmp_path) -> None:
    root = make_videos(tmp_path / "v")
    pred = make_predictor()
    real = pred.encode_video

    def slow(video, *a, **k):
        time.sleep(1.0)
        return real(video, *a, **k)

    pred.encode_video = slow
    c = TestClient(create_app(pred, root, request_timeout_s=0.2))
    r = c.post("/api/localize", json={"video": "colours.webm", "query": "red"})
    assert r.status_code == 504 and "longer than" in r.json()["error"]

    def crash(video, *a, **k):
        raise RuntimeError(f"boom at {root}")

    pred.encode_video = crash
    c = TestClient(create_app(pred, root), raise_server_exceptions=False)
    r = c.post("/api/localize", json={"video": "colours.webm", "query": "red"})
    assert r.status_code == 500 and r.json() == {"error": "internal error"}


def test_openapi_schema_documents_the_api(site) -> None:
    schema = site["client"].get("/api/openapi.json").json()
    paths = schema["paths"]
    assert {"/api/health", "/api/videos", "/api/localize", "/api/upload", "/videos/{name}"} <= set(paths)
    assert "LocalizeRequest" in schema["components"]["schemas"] and "ErrorOut" in schema["components"]["schemas"]
    assert "413" in paths["/api/upload"]["post"]["responses"]


def test_names_too_long_for_the_file_system(site) -> None:
    c = site["client"]
    name = "a" * 300 + ".mp4"
    for r in (c.get(f"/videos/{name}"), c.post("/api/localize", json={"video": name, "query": "red"}),
              c.get(f"/videos/sub/{'b' * 250}/{'c' * 250}.mp4")):
        assert r.status_code in (400, 404), r.text
        no_leak(r, site)


def test_a_video_past_the_clip_limit_is_413(tmp_path) -> None:
    root = make_videos(tmp_path / "v")
    pred = make_predictor()
    pred.max_clips = 5  # colours.webm: 6 s at 2 fps = 12 clips
    c = TestClient(create_app(pred, root))
    r = c.post("/api/localize", json={"video": "colours.webm", "query": "red"})
    assert r.status_code == 413 and "video too long" in r.json()["error"] and "limit of 5" in r.json()["error"]
    assert str(tmp_path) not in r.text
    assert pred.videos_encoded == 1


def test_a_full_disk_answers_507(tmp_path, monkeypatch) -> None:
    import errno

    import momentloc.server.app as server

    root = make_videos(tmp_path / "v")
    before = sorted(p.name for p in root.iterdir())
    c = TestClient(create_app(make_predictor(), root))

    def no_space(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(server.os, "replace", no_space)
    r = c.post("/api/upload", files={"file": ("x.webm", b"\0" * 1000)})
    assert r.status_code == 507 and r.json() == {"error": "the server has no space left to store the upload"}
    assert sorted(p.name for p in root.iterdir()) == before  # no temp file left
    assert "507" in c.get("/api/openapi.json").json()["paths"]["/api/upload"]["post"]["responses"]
