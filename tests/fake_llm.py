"""A fake OpenAI-compatible chat-completions server on 127.0.0.1, for tests and for trying `pairs` without an LLM.

It answers ``POST /v1/chat/completions`` with questions built from the passage in the prompt (so every passage gets
its own), and can be told to answer some requests otherwise: a status code (429, 500, 401...), a malformed answer, or
a slow reply. It records every request it gets. It is not a language model: its questions are templates.

Try the whole path by hand, documents to 48 pairs to a fine-tuned model (on a 2-core CPU: 7 s, then 21 s)::

    python tests/fake_llm.py --port 8765 &
    python -m ft_helpers pairs --documents examples/documents --output pairs.jsonl \
        --base-url http://127.0.0.1:8765/v1 --model fake
    python -m ft_helpers run --dataset pairs.jsonl --train-batch-size 32 --output-dir output/from-documents

The run's scores say nothing about real questions: these are templates. ``--delay 0.5`` slows every reply, to try
Ctrl-C and ``--resume``.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import re
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Reply:
    """One scripted answer: an HTTP status, a body (text for 200, an error message otherwise), a delay, headers."""

    status: int = 200
    content: str | None = None
    delay: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)


def make_questions(prompt: str) -> list[str]:
    """Two template questions about the passage in a prompt (its last paragraph), distinct for distinct passages."""
    passage = prompt.rsplit("\n", 2)[-2] if prompt.count("\n") >= 2 else prompt
    words = re.findall(r"[A-Za-z][A-Za-z0-9$%.-]{3,}", passage)
    counted = re.search(r"write (\d+) different", prompt)
    n = int(counted.group(1)) if counted else 2
    digest = hashlib.sha256(passage.encode("utf-8")).hexdigest()[:4]  # template questions differ between passages
    questions = []
    for index in range(n):
        start = len(words) * (index + 1) // (n + 1)  # spread over the passage: overlapping passages differ
        picked = words[start : start + 3] or ["this", "topic"]
        questions.append(f"What is reported about {' '.join(picked)} (note {digest}-{index + 1})?")
    return questions


class FakeLLM:
    """The server: start it, script replies with :meth:`script`, read :attr:`requests`, then :meth:`stop` it."""

    def __init__(self, port: int = 0) -> None:
        self.requests: list[dict[str, Any]] = []
        self.replies: list[Reply] = []
        self.lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # quiet
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                body = json.loads(self.rfile.read(length) or b"{}")
                prompt = body.get("messages", [{}])[-1].get("content", "")
                with fake.lock:
                    fake.requests.append(
                        {"path": self.path, "model": body.get("model"), "prompt": prompt,
                         "authorization": self.headers.get("Authorization", "")}
                    )  # fmt: skip
                    reply = fake.replies.pop(0) if fake.replies else Reply()
                if reply.delay:
                    time.sleep(reply.delay)
                if not self.path.endswith("/chat/completions"):
                    reply = Reply(404, "no such route")
                if reply.status != 200:
                    message = reply.content or f"scripted status {reply.status}"
                    self._send(reply.status, {"error": {"message": message, "type": "fake"}}, reply.headers)
                    return
                content = reply.content if reply.content is not None else json.dumps(make_questions(prompt))
                answer = {
                    "id": f"fake-{len(fake.requests)}",
                    "object": "chat.completion",
                    "created": 0,
                    "model": body.get("model", "fake"),
                    "choices": [
                        {"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}
                    ],
                    "usage": {"prompt_tokens": len(prompt) // 4, "completion_tokens": len(content) // 4,
                              "total_tokens": (len(prompt) + len(content)) // 4},
                }  # fmt: skip
                self._send(200, answer, reply.headers)

            def _send(self, status: int, payload: dict[str, Any], headers: dict[str, str]) -> None:
                data = json.dumps(payload).encode("utf-8")
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    for name, value in headers.items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):  # the client gave up (a timeout, a kill)
                    pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        """The URL to pass as --base-url."""
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def script(self, *replies: Reply) -> None:
        """Answer the next requests with these replies, in order (then as usual)."""
        with self.lock:
            self.replies.extend(replies)

    def start(self) -> FakeLLM:
        """Serve in a background thread."""
        self.thread.start()
        return self

    def stop(self) -> None:
        """Stop serving."""
        self.server.shutdown()
        self.server.server_close()


def main() -> None:
    """Serve until Ctrl-C (``--delay`` slows every reply, to try an interrupt and --resume by hand)."""
    parser = argparse.ArgumentParser(description="A fake OpenAI-compatible server (template questions, no model).")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--delay", type=float, default=0.0, help="Seconds before each reply.")
    args = parser.parse_args()
    fake = FakeLLM(args.port)
    if args.delay:
        fake.script(*[Reply(delay=args.delay) for _ in range(100_000)])
    print(f"fake LLM at {fake.base_url} (Ctrl-C stops it)", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        fake.server.serve_forever()


if __name__ == "__main__":
    main()
