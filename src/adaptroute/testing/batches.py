"""The fake server's files and batches endpoints (OpenAI's batch API, as litellm's create_file,
create_batch, retrieve_batch and file_content call it).

POST /v1/files (multipart: purpose, file) stores a JSONL file; POST /v1/batches runs every line of its
input file through the server's per-model behaviours (the same scripts as chat completions, the same
prompt cache) and writes an output file; GET /v1/batches/{id} reports "in_progress" for the first
``polls_to_complete - 1`` reads, then "completed" with the output file's id; GET /v1/files/{id}/content
returns a file's bytes.
"""

from __future__ import annotations

import email.parser
import email.policy
import itertools
import json
import threading
import time
from typing import TYPE_CHECKING, Any

from .prompt_cache import usage

if TYPE_CHECKING:
    from .fake_openai import FakeOpenAI

__all__ = ["FakeBatches"]


def _multipart(content_type: str, body: bytes) -> dict[str, tuple[str | None, bytes]]:
    """Form fields of a multipart/form-data body: name -> (filename, bytes)."""
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        f"Content-Type: {content_type}\r\n\r\n".encode("latin-1") + body)
    fields: dict[str, tuple[str | None, bytes]] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if name:
            fields[str(name)] = (part.get_filename(), part.get_payload(decode=True) or b"")
    return fields


class FakeBatches:
    def __init__(self, server: FakeOpenAI, polls_to_complete: int = 2) -> None:
        self.server = server
        self.polls_to_complete = max(1, polls_to_complete)
        self.files: dict[str, tuple[str, bytes]] = {}  # id -> (purpose, content)
        self.batches: dict[str, dict[str, Any]] = {}
        self._polls: dict[str, int] = {}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    def route(self, method: str, route: str, headers: dict[str, str], body: bytes) -> tuple[int, Any] | None:
        """(status, JSON payload or bytes) for a files or batches request; None for any other route."""
        parts = route.split("/")
        if method == "POST" and route.endswith("/files"):
            return self._upload(headers.get("content-type", ""), body)
        if method == "GET" and len(parts) >= 3 and parts[-3] == "files" and parts[-1] == "content":
            return self._content(parts[-2])
        if method == "GET" and len(parts) >= 2 and parts[-2] == "files":
            stored = self.files.get(parts[-1])
            return (200, self._file_object(parts[-1], *stored)) if stored else _missing("file", parts[-1])
        if method == "POST" and route.endswith("/batches"):
            return self._create(body)
        if method == "GET" and len(parts) >= 2 and parts[-2] == "batches":
            return self._retrieve(parts[-1])
        return None

    # -- files ------------------------------------------------------------------------------------
    def _file_object(self, ident: str, purpose: str, content: bytes) -> dict[str, Any]:
        return {"id": ident, "object": "file", "bytes": len(content), "created_at": int(time.time()),
                "filename": f"{ident}.jsonl", "purpose": purpose, "status": "processed"}

    def _store(self, purpose: str, content: bytes) -> str:
        with self._lock:
            ident = f"file-fake-{next(self._ids)}"
            self.files[ident] = (purpose, content)
        return ident

    def _upload(self, content_type: str, body: bytes) -> tuple[int, Any]:
        if "multipart/form-data" not in content_type:
            return 400, _error("expected a multipart/form-data upload")
        fields = _multipart(content_type, body)
        if "file" not in fields:
            return 400, _error("no file field in the upload")
        purpose = fields.get("purpose", (None, b"batch"))[1].decode() or "batch"
        ident = self._store(purpose, fields["file"][1])
        return 200, self._file_object(ident, purpose, fields["file"][1])

    def _content(self, ident: str) -> tuple[int, Any]:
        stored = self.files.get(ident)
        return (200, stored[1]) if stored else _missing("file", ident)

    # -- batches ----------------------------------------------------------------------------------
    def _create(self, body: bytes) -> tuple[int, Any]:
        try:
            request = json.loads(body)
        except ValueError:
            return 400, _error("request body is not JSON")
        source = self.files.get(str(request.get("input_file_id")))
        if source is None:
            return _missing("file", str(request.get("input_file_id")))
        lines, failed = [], 0
        for raw in source[1].decode().splitlines():
            if not raw.strip():
                continue
            item = json.loads(raw)
            status, payload = self._answer(item.get("body") or {})
            failed += status != 200
            lines.append(json.dumps({"id": f"batch_req_{next(self._ids)}", "custom_id": item.get("custom_id"),
                                     "response": {"status_code": status, "request_id": f"req_{next(self._ids)}", "body": payload},
                                     "error": None}))
        output = self._store("batch_output", ("\n".join(lines) + "\n").encode())
        with self._lock:
            ident = f"batch_fake_{next(self._ids)}"
            self.batches[ident] = {
                "id": ident, "object": "batch", "endpoint": request.get("endpoint", "/v1/chat/completions"),
                "input_file_id": request.get("input_file_id"), "completion_window": request.get("completion_window", "24h"),
                "status": "in_progress", "output_file_id": None, "error_file_id": None, "created_at": int(time.time()),
                "request_counts": {"total": len(lines), "completed": len(lines) - failed, "failed": failed},
                "metadata": request.get("metadata"), "_output": output,
            }
            self._polls[ident] = 0
        return 200, self._public(ident)

    def _public(self, ident: str) -> dict[str, Any]:
        return {k: v for k, v in self.batches[ident].items() if not k.startswith("_")}

    def _retrieve(self, ident: str) -> tuple[int, Any]:
        with self._lock:
            batch = self.batches.get(ident)
            if batch is None:
                return _missing("batch", ident)
            self._polls[ident] += 1
            if self._polls[ident] >= self.polls_to_complete and batch["status"] == "in_progress":
                batch.update(status="completed", output_file_id=batch["_output"], completed_at=int(time.time()))
        return 200, self._public(ident)

    def _answer(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """One batched chat completion, by the model's scripted behaviour."""
        server = self.server
        model = str(body.get("model"))
        server._note_request(model)
        b = server._next_behavior(model)
        if b.kind == "error":
            return b.status, {"error": {"message": b.error_message, "type": b.error_type, "code": b.error_code}}
        if b.kind not in ("ok", "stream_break", "stream_malformed"):
            return 500, {"error": {"message": "the batch worker failed on this request", "type": "server_error", "code": None}}
        cached = server.prompt_cache.cached_tokens(model, body, b.prompt_tokens)
        content = b.content if b.content is not None else f"answer from {model}"
        return 200, {
            "id": f"chatcmpl-fake-{next(self._ids)}", "object": "chat.completion", "created": int(time.time()), "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
            "usage": usage(b.prompt_tokens, b.completion_tokens, cached),
        }


def _error(message: str) -> dict[str, Any]:
    return {"error": {"message": message, "type": "invalid_request_error", "param": None, "code": None}}


def _missing(kind: str, ident: str) -> tuple[int, Any]:
    return 404, _error(f"no {kind} {ident!r}")
