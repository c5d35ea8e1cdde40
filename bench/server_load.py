"""Load test of the chat server: N simulated users at once, each a four-turn dialogue-only conversation.

    .venv/bin/python bench/server_load.py [--users 50] [--turns 4] [--topology single,multi] [--runs 3]
                                          [--out results/server_load.json] [--dialogue-model DIR] [--url URL]

Topologies (each run starts its servers afresh; with several, they alternate run by run):
- `single`: one `i2edit serve` (a temporary data dir, SQLite, `--weights none`), as `make demo` runs it;
- `multi`: a throwaway PostgreSQL cluster and two `i2edit serve --workers 0 --store database` web processes,
  each in its own working directory (one torch thread each, `--web-threads`); user i talks to process i mod 2,
  as a round-robin proxy would send them.
`--url` names a running server instead. Every user starts at the same moment, creates a conversation (its own
owner cookie) and sends its turns one after another, each as soon as the previous answer arrived. Prints
p50/p95/max turn latency (time from sending a turn to its full 201 answer), errors (any status but 201, or a
failed connection) and throughput, per run; `--out` writes every run (and the load average before it) as JSON.
The per-client rate limit is switched off in the servers it starts, because every simulated user comes from the
same address. `--model-floor` instead times the dialogue model alone on one batch of N turns: the least a burst
of N users can wait.
"""
from __future__ import annotations

import argparse
import contextlib
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
from typing import Iterator
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
    if args.single_torch_threads:
        command += ["--torch-threads", str(args.single_torch_threads)]
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


@contextlib.contextmanager
def single_server(args: argparse.Namespace) -> Iterator[list[str]]:
    """One `i2edit serve` on SQLite; yields its URL."""
    data_dir = Path(tempfile.mkdtemp(prefix="i2edit-load-"))
    proc = None
    try:
        proc, url = start_server(args, data_dir)
        yield [url]
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(timeout=60)
        shutil.rmtree(data_dir, ignore_errors=True)


@contextlib.contextmanager
def multi_server(args: argparse.Namespace) -> Iterator[list[str]]:
    """PostgreSQL and two stateless web processes; yields their URLs."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
    from topology import create_database, postgres_cluster, start_web

    root = Path(tempfile.mkdtemp(prefix="i2edit-load-multi-"))
    webs = []
    try:
        with postgres_cluster() as server_url:
            database_url = create_database(server_url)
            extra = ["--workers", "0", "--weights", "none", "--rate-limit", "0", "--store", "database",
                     "--torch-threads", str(args.web_threads)]
            if args.dialogue_model:
                extra += ["--dialogue-model", args.dialogue_model]
            if args.threads:
                extra += ["--threads", str(args.threads)]
            webs = [start_web(database_url, root / f"web-{i}", *extra, wait=False) for i in (1, 2)]
            yield [web.wait_ready().url for web in webs]
    finally:
        for web in webs:
            web.stop()
        shutil.rmtree(root, ignore_errors=True)


def run_load(args: argparse.Namespace, urls: list[str]) -> dict:
    """Every user at once against `urls` (user i: urls[i mod len]); the figures of one run."""
    barrier = threading.Barrier(args.users + 1)
    users = [User(i, urls[i % len(urls)], args.turns, barrier) for i in range(args.users)]
    for user in users:
        user.start()
    barrier.wait()
    started = time.perf_counter()
    for user in users:
        user.join()
    wall = time.perf_counter() - started
    latencies = [t for user in users for t in user.latencies]
    errors = [e for user in users for e in user.errors]
    return {
        "users": args.users, "turns_per_user": args.turns, "web_processes": len(urls), "turns_ok": len(latencies),
        "errors": len(errors), "error_examples": errors[:5],
        "p50_ms": round(percentile(latencies, 50) * 1000, 1), "p95_ms": round(percentile(latencies, 95) * 1000, 1),
        "max_ms": round(max(latencies, default=float("nan")) * 1000, 1),
        "mean_ms": round(statistics.fmean(latencies) * 1000, 1) if latencies else None,
        "turns_per_s": round(len(latencies) / wall, 1), "wall_s": round(wall, 2),
    }


def _states_before(model, turns: list[tuple[list, str]]) -> list:
    """The belief state after each turn's history (None for a first turn): what the chat shows before it."""
    asks = [(history[:-1], history[-1][0]) for history, _ in turns if history]
    tracked = iter([p.state for p in model.predict(asks, track_only=True)] if asks else [])
    return [next(tracked) if history else None for history, _ in turns]


def burst_seconds(model, users: int, turn: int) -> float:
    """Seconds of one batched `model.predict` on `users` turns at position `turn` (turn - 1 earlier exchanges,
    each turn given the state the page shows before it, as the server passes it); median of 3."""
    texts = (REQUESTS * (users // len(REQUESTS) + 1))[:users]
    replies = {text: p.response for text, p in zip(REQUESTS, model.predict([([], text) for text in REQUESTS]))}
    turns = []
    for i, text in enumerate(texts):
        earlier = [REQUESTS[(i + k + 1) % len(REQUESTS)] for k in range(turn - 1)]
        turns.append(([(u, replies[u]) for u in earlier], text))
    # the states are tracked once here, untimed
    turns = [(history, text, state) for (history, text), state in zip(turns, _states_before(model, turns))]
    times = []
    for _ in range(3):
        started = time.perf_counter()
        model.predict(turns)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def model_floor(args: argparse.Namespace) -> dict[int, float]:
    """Seconds the dialogue model alone needs for one batched call on `args.users` turns (`burst_seconds`), with
    the server's dialogue threads, for first turns and for fourth turns (three earlier exchanges): no burst of that
    many users can be answered faster."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as in the server's dialogue process
    import torch

    from dialogue.model import DialogueModel
    from server.dialogue_process import default_dialogue_threads

    torch.set_num_threads(default_dialogue_threads())
    model = DialogueModel.from_pretrained(args.dialogue_model, device="cpu")
    model.predict([([], REQUESTS[0])])  # warm-up
    return {turn: burst_seconds(model, args.users, turn) for turn in (1, args.turns)}


TOPOLOGIES = {"single": single_server, "multi": multi_server}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--turns", type=int, default=4)
    parser.add_argument("--topology", default="single",
                        help="comma-separated: single (one serve, SQLite), multi (PostgreSQL, two web processes)")
    parser.add_argument("--runs", type=int, default=1, help="runs per topology (alternating)")
    parser.add_argument("--out", type=Path, help="write every run as JSON to this file (e.g. results/...)")
    parser.add_argument("--url", help="use this running server instead of starting one")
    parser.add_argument("--dialogue-model", help="dialogue model directory (default: the shipped model)")
    parser.add_argument("--threads", type=int, help="request threads of the servers it starts (default: serve's)")
    parser.add_argument("--web-threads", type=int, default=1,
                        help="torch threads of each web process of the multi topology (and its dialogue process)")
    parser.add_argument("--single-torch-threads", type=int,
                        help="torch threads of the single topology's serve and its dialogue process (default: serve's)")
    parser.add_argument("--json", action="store_true", help="print one JSON object per run")
    parser.add_argument("--model-floor", action="store_true",
                        help="only time the dialogue model's batched call for --users first turns (no server)")
    args = parser.parse_args()
    if args.model_floor:
        floors = model_floor(args)
        for turn, seconds in floors.items():
            print(f"dialogue model alone, one batched call for {args.users} turns at turn {turn}: "
                  f"{seconds * 1000:.0f} ms")
        if args.out:
            from server.dialogue_process import default_dialogue_threads

            args.out.write_text(json.dumps({
                "command": "bench/server_load.py " + " ".join(sys.argv[1:]), "users": args.users,
                "torch_threads": default_dialogue_threads(), "cpus": os.cpu_count(),
                "batch_ms_by_turn": {str(turn): round(s * 1000, 1) for turn, s in floors.items()}}, indent=2) + "\n")
        return 0
    topologies = args.topology.split(",")
    unknown = set(topologies) - set(TOPOLOGIES)
    if unknown:
        raise SystemExit(f"unknown topology {', '.join(sorted(unknown))}; use single and/or multi")

    runs = []
    for number in range(args.runs):
        for topology in ([] if args.url else topologies) or ["url"]:
            load_before = os.getloadavg()[0]
            if topology == "url":
                result = run_load(args, [args.url.rstrip("/")])
            else:
                with TOPOLOGIES[topology](args) as urls:
                    result = run_load(args, urls)
            result.update(topology=topology, run=number + 1, load_average_before=round(load_before, 2),
                          cpus=os.cpu_count())
            runs.append(result)
            if args.json:
                print(json.dumps(result), flush=True)
            else:
                print(f"[{topology} run {number + 1}] {args.users} users x {args.turns} turns, "
                      f"{result['web_processes']} web process(es), {os.cpu_count()} CPUs, load average "
                      f"{load_before:.1f} before: p50 {result['p50_ms']} ms, p95 {result['p95_ms']} ms, max "
                      f"{result['max_ms']} ms over {result['turns_ok']} turns; errors {result['errors']}; "
                      f"{result['turns_per_s']} turns/s", flush=True)
                for error in result["error_examples"]:
                    print(f"  e.g. {error}")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"command": " ".join(sys.argv), "runs": runs}, indent=1) + "\n")
    return 0 if not any(run["errors"] for run in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
