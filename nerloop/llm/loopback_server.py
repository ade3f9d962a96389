"""A real HTTP server on 127.0.0.1 that speaks OpenAI's chat-completions protocol, scripted.

Used by the annotate tests and by ``scripts/bench_annotate.py``. A *responder* decides each
reply from the prompt and how many times the server has received that prompt, so a test can
script answers that are good, slow, rate limited (429 + Retry-After), failing (500),
malformed (a body that is not JSON, or content that is not the asked JSON), full of invented
tokens, or that never come (``hang``). The server counts what it received and what it
answered, per prompt, and the ``Authorization`` headers it saw.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from nerloop.labels import load_scheme
from nerloop.llm.tasks.token_ner.util import tag_ids_for_labels

# the token-level task's tag ids for the default label scheme (the study's ids)
TAG_IDS = tag_ids_for_labels(load_scheme().labels)
_TOKENS_LINE = re.compile(r"Tokens: '`(.*)`'\n    Return", re.DOTALL)


@dataclass
class FakeReply:
    """One scripted reply.

    status (int): HTTP status.
    content (str | None): the assistant message (a 200 body is built around it).
    body (str | None): a raw body instead (e.g. malformed JSON, or an error object).
    headers (dict): extra headers (e.g. ``Retry-After``).
    delay (float): seconds to wait before answering (on top of the server's latency).
    usage (bool): include ``usage`` in a 200 body.
    hang (bool): never answer: wait until :meth:`FakeOpenAIServer.release`, then close.
    finish_reason (str): the choice's ``finish_reason`` in a 200 body (``"length"``: the reply
        was cut off by ``max_tokens``).
    """

    status: int = 200
    content: str | None = None
    body: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    usage: bool = True
    hang: bool = False
    finish_reason: str = "stop"


Responder = Callable[[str, int], FakeReply]


def prompt_tokens(prompt: str) -> list[str] | None:
    """The tokens a ``nerloop.TokenNER.v1`` prompt lists, or None for another prompt."""
    match = _TOKENS_LINE.search(prompt)
    return match.group(1).split("`, `") if match else None


def prompt_paragraph(prompt: str) -> str | None:
    """The text a ``spacy.NER.v3`` prompt asks about, or None for another prompt."""
    if "Paragraph: " not in prompt:
        return None
    last = prompt.rsplit("Paragraph: ", 1)[1]
    return last.split("\nAnswer:", 1)[0].strip()


def iob2_entities(tokens: Sequence[str], tags: Sequence[str]) -> list[tuple[str, str]]:
    """(text, label) of the entities in IOB2 tags."""
    entities: list[tuple[str, str]] = []
    current: list[str] = []
    label = ""
    for token, tag in [*zip(tokens, tags), ("", "O")]:
        if current and not (tag.startswith("I-") and tag[2:] == label):
            entities.append((" ".join(current), label))
            current = []
        if tag.startswith("B-") or (tag.startswith("I-") and not current):
            current, label = [token], tag[2:]
        elif tag.startswith("I-"):
            current.append(token)
    return entities


class Oracle:
    """Correct answers for known sentences, in the format each prompt asks for.

    sentences (Mapping[tuple[str, ...], Sequence[str]]): tokens -> IOB2 tags.
    tag_ids (Optional[Mapping[str, int]]): the token task's tag ids (default ``TAG_IDS``).
    """

    def __init__(
        self,
        sentences: Mapping[tuple[str, ...], Sequence[str]],
        tag_ids: Mapping[str, int] | None = None,
    ):
        self.sentences = {tuple(tokens): list(tags) for tokens, tags in sentences.items()}
        self.by_text = {" ".join(tokens): tokens for tokens in self.sentences}
        self.tag_ids = dict(tag_ids or TAG_IDS)

    def token_ner_reply(self, tokens: Sequence[str]) -> str:
        tags = self.sentences[tuple(tokens)]
        return json.dumps({"ner_tags": [self.tag_ids[t] for t in tags], "tokens": list(tokens)})

    def ner_v3_reply(self, text: str) -> str:
        tokens = self.by_text[text]
        entities = iob2_entities(tokens, self.sentences[tokens])
        lines = [
            f"{i}. {entity} | True | {label} | is a {label}"
            for i, (entity, label) in enumerate(entities, start=1)
        ]
        return "\n".join(lines) if lines else "1. nothing | False | ==NONE== | no entities"

    def answer(self, prompt: str) -> str:
        """The correct reply to a TokenNER or NER.v3 prompt about a known sentence."""
        tokens = prompt_tokens(prompt)
        if tokens is not None:
            return self.token_ner_reply(tokens)
        text = prompt_paragraph(prompt)
        if text is not None:
            return self.ner_v3_reply(text)
        raise KeyError("the fake server does not know this prompt")

    def responder(self, prompt: str, attempt: int) -> FakeReply:
        return FakeReply(content=self.answer(prompt))


class FakeOpenAIServer:
    """``POST /v1/chat/completions`` and ``GET /v1/models`` on 127.0.0.1, in a thread.

    responder (Responder): (prompt, n-th time this prompt arrives, from 1) -> FakeReply.
    latency (float): seconds added to every chat reply.
    """

    def __init__(self, responder: Responder, *, latency: float = 0.0):
        self.responder = responder
        self.latency = latency
        self.received: Counter = Counter()
        self.answered: Counter = Counter()
        self.authorizations: Counter = Counter()
        self.arrivals: list[tuple[float, str]] = []
        self.hanging = 0
        self._released = threading.Event()
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _make_handler(self))
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}/v1"

    @property
    def n_received(self) -> int:
        with self._lock:
            return sum(self.received.values())

    @property
    def n_answered(self) -> int:
        with self._lock:
            return sum(self.answered.values())

    def start(self) -> FakeOpenAIServer:
        self._thread.start()
        return self

    def release(self) -> None:
        """Let hanging requests end (without an answer)."""
        self._released.set()

    def stop(self) -> None:
        self.release()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> FakeOpenAIServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _arrive(self, prompt: str, authorization: str | None) -> int:
        with self._lock:
            self.received[prompt] += 1
            self.arrivals.append((time.monotonic(), prompt))
            if authorization:
                self.authorizations[authorization] += 1
            return self.received[prompt]

    def _answered(self, prompt: str) -> None:
        with self._lock:
            self.answered[prompt] += 1

    def _hang(self) -> None:
        with self._lock:
            self.hanging += 1
        self._released.wait()


def chat_body(
    content: str, model: str, prompt: str, usage: bool, finish_reason: str = "stop"
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content},
                "finish_reason": finish_reason,
            }
        ],
    }
    if usage:
        prompt_tokens = len(prompt.split())
        completion_tokens = len(content.split())
        body["usage"] = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        }
    return body


def _make_handler(server: FakeOpenAIServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Headers and body go out in separate writes: without this, Nagle's algorithm and the
        # client's delayed ACK add ~40 ms to every reply (real servers set TCP_NODELAY too).
        disable_nagle_algorithm = True

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            pass

        def _send(self, status: int, body: str, headers: Mapping[str, str] = {}) -> None:  # noqa: B006
            data = body.encode("utf8")
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for key, value in headers.items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(data)
            self.wfile.flush()

        def do_GET(self) -> None:
            if self.path.rstrip("/").endswith("/models"):
                self._send(200, json.dumps({"object": "list", "data": [{"id": "fake-model"}]}))
            else:
                self._send(404, json.dumps({"error": {"message": "not found"}}))

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            request = json.loads(self.rfile.read(length) or b"{}")
            if not self.path.rstrip("/").endswith("/chat/completions"):
                self._send(404, json.dumps({"error": {"message": "not found"}}))
                return
            prompt = request["messages"][-1]["content"]
            attempt = server._arrive(prompt, self.headers.get("Authorization"))
            reply = server.responder(prompt, attempt)
            if reply.hang:
                server._hang()
                self.close_connection = True
                return
            time.sleep(server.latency + reply.delay)
            if reply.body is not None:
                body = reply.body
            elif reply.status == 200:
                content = reply.content if reply.content is not None else ""
                model = request.get("model", "")
                body = json.dumps(
                    chat_body(content, model, prompt, reply.usage, reply.finish_reason)
                )
            else:
                body = json.dumps({"error": {"message": f"scripted {reply.status}"}})
            try:
                self._send(reply.status, body, reply.headers)
            except (BrokenPipeError, ConnectionResetError):
                return
            if reply.status == 200:
                server._answered(prompt)

    return Handler
