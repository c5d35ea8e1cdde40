"""Load test of the chat server: N simulated users at once, each a four-turn dialogue-only conversation.

    .venv/bin/python bench/server_load.py [--users 50] [--turns 4] [--dialogue-model DIR] [--url URL]

Starts `i2edit serve` on 127.0.0.1 (a free port, a temporary data dir, SQLite, `--weights none`) unless `--url`
names a running server, waits until it answers, then starts every user at the same moment. Each user creates
a conversation (its own owner cookie) and sends its turns one after another, each as soon as the previous
answer arrived. Prints p50/p95/max turn latency (time from sending a turn to its full 201 answer), errors
(any status but 201, or a failed connection) and throughput. The per-client rate limit is switched off in the
server it starts, because every simulated user comes from the same address. `--model-floor` instead times
the dialogue model alone on one batch of N turns: the least a burst of N users can wait.
"""
from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

REQUESTS = [
    "Please make her smile.", "Can you give him black hair?", "I'd like blond hair instead.",
    "Add some lipstick.", "Make the hair wavy.", "Take the mustache off.", "Give him a goatee.",
    "She should look sad.", "Add earrings please.", "Make the skin pale.", "Now gray hair.",
    "Bushy eyebrows, please.", "No makeup at all.", "Give her bangs.", "Make him look angry.",
    "Rosy cheeks would be nice.", "Straight hair, please.", "Let's try heavy makeup.", "Sure, go ahead.",
    "No thanks, make her smile instead.",
]


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0..100) by linear interpolation between closest ranks."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    position = (len(ordered) - 1) * q / 100
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


class User(threading.Thread):
    """One simulated person: a conversation with `turns` messages, timing each turn."""

    def __init__(self, number: int, base_url: str, turns: int, start: threading.Barrier):
        super().__init__(name=f"user-{number}", daemon=True)
        self.rng = random.Random(number)
        parts = urlsplit(base_url)
        self.host, self.port = parts.hostname, parts.port or 80
        self.turns = turns
        self.start_barrier = start
        self.latencies: list[float] = []
        self.errors: list[str] = []
        self.cookie = ""

    def request(self, conn: http.client.HTTPConnection, path: str, body: dict) -> tuple[int, dict]:
        headers = {"Content-Type": "application/json"}
        if self.cookie:
            headers["Cookie"] = self.cookie
        conn.request("POST", path, body=json.dumps(body), headers=headers)
        response = conn.getresponse()
        data = response.read()
        cookie = response.getheader("Set-Cookie")
        if cookie:
            self.cookie = cookie.split(";", 1)[0]
        try:
            return response.status, json.loads(data)
        except ValueError:
            return response.status, {"detail": data[:200].decode(errors="replace")}

    def run(self) -> None:
        conn = http.client.HTTPConnection(self.host, self.port, timeout=120)
        self.start_barrier.wait()
        try:
            status, body = self.request(conn, "/api/conversations", {})
            if status != 201:
                self.errors.append(f"create: {status} {body.get('detail')}")
                return
            path = f"/api/conversations/{body['id']}/turns"
            for text in self.rng.sample(REQUESTS, self.turns):
                started = time.perf_counter()
                status, body = self.request(conn, path, {"text": text})
                elapsed = time.perf_counter() - started
                if status == 201:
                    self.latencies.append(elapsed)
                else:
                    self.errors.append(f"turn: {status} {body.get('detail')}")
        except (OSError, http.client.HTTPException) as exc:
            self.errors.append(f"connection: {exc}")
        finally:
            conn.close()


def start_server(args: argparse.Namespace, data_dir: Path) -> tuple[subprocess.Popen, str]:
    command = [sys.executable, "-m", "server.cli", "serve", "--host", "127.0.0.1", "--port", "0",
               "--data-dir", str(data_dir), "--weights", "none", "--rate-limit", "0"]
    if args.dialogue_model:
        command += ["--dialogue-model", args.dialogue_model]
    if args.threads:
        command += ["--threads", str(args.threads)]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            cwd=Path(__file__).resolve().parent.parent)
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if line.startswith("dialogue:") and "could not be loaded" in line:
            proc.terminate()
            raise SystemExit(f"the server has no dialogue model: {line.strip()}")
        match = re.search(r"running at (http://\S+)/", line)
        if match:
            threading.Thread(target=lambda: [None for _ in proc.stdout], daemon=True).start()  # drain logs
            return proc, match.group(1)
    raise SystemExit("the server did not start:\n" + "".join(lines))


def model_floor(args: argparse.Namespace) -> dict[int, float]:
    """Seconds the dialogue model alone needs for one batched call on `args.users` turns (median of 3), with the
    server's dialogue threads, for first turns and for fourth turns (three earlier exchanges): no burst of that
    many users can be answered faster."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as in the server's dialogue process
    import torch

    from dialogue.model import DialogueModel
    from server.dialogue_process import default_dialogue_threads

    torch.set_num_threads(default_dialogue_threads())
    model = DialogueModel.from_pretrained(args.dialogue_model, device="cpu")
    texts = (REQUESTS * (args.users // len(REQUESTS) + 1))[: args.users]
    model.predict([([], texts[0])])  # warm-up
    replies = {text: p.response for text, p in zip(REQUESTS, model.predict([([], text) for text in REQUESTS]))}
    floors = {}
    for turn in (1, args.turns):
        turns = []
        for i, text in enumerate(texts):
            earlier = [REQUESTS[(i + k + 1) % len(REQUESTS)] for k in range(turn - 1)]
            turns.append(([(u, replies[u]) for u in earlier], text))
        times = []
        for _ in range(3):
            started = time.perf_counter()
            model.predict(turns)
            times.append(time.perf_counter() - started)
        floors[turn] = statistics.median(times)
    return floors


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--turns", type=int, default=4)
    parser.add_argument("--url", help="use this running server instead of starting one")
    parser.add_argument("--dialogue-model", help="dialogue model directory (default: the shipped model)")
    parser.add_argument("--threads", type=int, help="request threads of the server it starts (default: serve's)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--model-floor", action="store_true",
                        help="only time the dialogue model's batched call for --users first turns (no server)")
    args = parser.parse_args()
    if args.model_floor:
        for turn, seconds in model_floor(args).items():
            print(f"dialogue model alone, one batched call for {args.users} turns at turn {turn}: "
                  f"{seconds * 1000:.0f} ms")
        return 0

    data_dir = Path(tempfile.mkdtemp(prefix="i2edit-load-"))
    proc = None
    try:
        if args.url:
            url = args.url.rstrip("/")
        else:
            proc, url = start_server(args, data_dir)
        barrier = threading.Barrier(args.users + 1)
        users = [User(i, url, args.turns, barrier) for i in range(args.users)]
        for user in users:
            user.start()
        barrier.wait()
        started = time.perf_counter()
        for user in users:
            user.join()
        wall = time.perf_counter() - started
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(timeout=60)
        shutil.rmtree(data_dir, ignore_errors=True)

    latencies = [t for user in users for t in user.latencies]
    errors = [e for user in users for e in user.errors]
    result = {
        "users": args.users, "turns_per_user": args.turns, "turns_ok": len(latencies), "errors": len(errors),
        "p50_ms": round(percentile(latencies, 50) * 1000, 1), "p95_ms": round(percentile(latencies, 95) * 1000, 1),
        "max_ms": round(max(latencies, default=float("nan")) * 1000, 1),
        "mean_ms": round(statistics.fmean(latencies) * 1000, 1) if latencies else None,
        "turns_per_s": round(len(latencies) / wall, 1), "wall_s": round(wall, 2), "cpus": os.cpu_count(),
    }
    if args.json:
        print(json.dumps(result))
    else:
        print(f"{args.users} users x {args.turns} turns against {url} ({os.cpu_count()} CPUs)")
        print(f"turn latency: p50 {result['p50_ms']} ms, p95 {result['p95_ms']} ms, max {result['max_ms']} ms "
              f"(mean {result['mean_ms']} ms) over {len(latencies)} turns")
        print(f"errors: {len(errors)}; throughput {result['turns_per_s']} turns/s; wall {result['wall_s']} s")
        for error in errors[:5]:
            print(f"  e.g. {error}")
    return 0 if not errors else 1


if __name__ == "__main__":
    sys.exit(main())
